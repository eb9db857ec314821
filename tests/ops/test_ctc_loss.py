"""The CTCLoss operator (ops/declarations/ctc.py; nd.ctc_loss, nd.CTCLoss, nd.contrib.ctc_loss):
MXNet 1.9.1's losses and gradients for every padding rule (recorded in mxnet_ctc_reference.json,
re-run live where MXNet's venv exists), the gradient against finite differences of the loss,
eagerly and inside a hybridized block, and the shape errors."""
import json
import os
import subprocess

import numpy as np
import pytest

import graphc as mx
import ctc_cases

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MXNET_PYTHON = os.environ.get("GRAPHC_MXNET_PYTHON", os.path.join(ROOT, "bench", ".venvs", "mxnet", "bin", "python"))
with open(os.path.join(HERE, "mxnet_ctc_reference.json")) as f:
    RECORDED = json.load(f)


@pytest.fixture(scope="module")
def graphc_answers():
    return ctc_cases.all_cases(mx)


def _assert_same(case, ours, theirs, what):
    for key, want in theirs.items():
        np.testing.assert_allclose(np.asarray(ours[key]), np.asarray(want), rtol=1e-4, atol=1e-5,
                                   err_msg=f"CTCLoss {case}.{key}: graphc vs MXNet 1.9.1 ({what})")


@pytest.mark.parametrize("case", sorted(RECORDED))
def test_ctc_loss_matches_the_recorded_mxnet_answer(case, graphc_answers):
    _assert_same(case, graphc_answers[case], RECORDED[case], "recorded")


def test_every_ctc_case_is_recorded(graphc_answers):
    assert sorted(graphc_answers) == sorted(RECORDED)


@pytest.mark.skipif(not os.path.exists(MXNET_PYTHON), reason="MXNet 1.9.1 venv (bench/.venvs/mxnet) not installed")
def test_live_mxnet_gives_the_recorded_ctc_answers(graphc_answers):
    proc = subprocess.run([MXNET_PYTHON, os.path.join(HERE, "ctc_cases.py"), "mxnet"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    live = json.loads(proc.stdout)
    for case, answers in live.items():
        _assert_same(case, RECORDED[case], answers, "recording vs live MXNet")
        _assert_same(case, graphc_answers[case], answers, "live")


def _loss(data, label, *lengths, **attrs):
    arrays = [mx.nd.array(data, dtype="float64"), mx.nd.array(label, dtype="float64")]
    arrays += [mx.nd.array(x, dtype="float64") for x in lengths]
    return mx.nd.ctc_loss(*arrays, **attrs).asnumpy()


@pytest.mark.parametrize("name", sorted(set(ctc_cases.CASES) | set(ctc_cases.LOSS_ONLY)))
def test_ctc_gradient_is_the_derivative_of_the_loss(name):
    label, attrs, data_lengths, label_lengths = {**ctc_cases.CASES, **ctc_cases.LOSS_ONLY}[name]
    lengths = [x for x in (data_lengths, label_lengths) if x is not None]
    data = ctc_cases.DATA.astype(np.float64)[:4]          # four time steps keep it quick
    if data_lengths is not None:
        lengths[0] = np.minimum(data_lengths, 4)
    head = ctc_cases.HEAD.astype(np.float64)
    x = mx.nd.array(data, dtype="float64")
    x.attach_grad()
    with mx.autograd.record():
        loss = mx.nd.ctc_loss(x, mx.nd.array(label, dtype="float64"),
                              *[mx.nd.array(v, dtype="float64") for v in lengths], **attrs)
    loss.backward(mx.nd.array(head, dtype="float64"))
    numeric = np.zeros_like(data)
    eps = 1e-6
    for index in np.ndindex(*data.shape):
        up, down = data.copy(), data.copy()
        up[index] += eps
        down[index] -= eps
        change = _loss(up, label, *lengths, **attrs) - _loss(down, label, *lengths, **attrs)
        numeric[index] = (change @ head) / (2 * eps)
    np.testing.assert_allclose(x.grad.asnumpy(), numeric, rtol=1e-5, atol=1e-7)


def test_infeasible_labels_give_zero_loss_and_zero_gradient():
    data = mx.nd.array(ctc_cases.DATA[:2, :1])               # two steps cannot hold "1 1" (needs 3)
    data.attach_grad()
    with mx.autograd.record():
        loss = mx.nd.ctc_loss(data, mx.nd.array([[1.0, 1.0]]))
    loss.backward()
    assert loss.asnumpy().tolist() == [0.0]
    assert not data.grad.asnumpy().any()


class _CTCBlock(mx.gluon.HybridBlock):
    def hybrid_forward(self, F, x, label, data_lengths):
        return F.contrib.ctc_loss(F.tanh(x), label, data_lengths, use_data_lengths=True, blank_label="last")


def test_ctc_loss_runs_inside_a_hybridized_block_with_its_gradient():
    label = mx.nd.array([[0.0, 1.0, -1.0], [2.0, 2.0, -1.0], [3.0, 0.0, 1.0]])
    lengths = mx.nd.array([5.0, 6.0, 4.0])
    outs = []
    for hybridize in (False, True):
        block = _CTCBlock()
        if hybridize:
            block.hybridize()
        x = mx.nd.array(ctc_cases.DATA)
        x.attach_grad()
        with mx.autograd.record():
            loss = block(x, label, lengths)
        loss.backward(mx.nd.array(ctc_cases.HEAD))
        outs.append((loss.asnumpy(), x.grad.asnumpy()))
    np.testing.assert_allclose(outs[1][0], outs[0][0], rtol=1e-6)
    np.testing.assert_allclose(outs[1][1], outs[0][1], rtol=1e-5, atol=1e-7)
    grad_of_item_2 = outs[0][1][:, 2]
    assert grad_of_item_2[:4].any() and not grad_of_item_2[4:].any(), "steps past data_lengths must get no gradient"


def test_ctc_loss_names_are_mxnets():
    data, label = mx.nd.array(ctc_cases.DATA), mx.nd.array([[1.0, 2.0], [3.0, 0.0], [1.0, 1.0]])
    want = mx.nd.ctc_loss(data, label).asnumpy()
    for fn in (mx.nd.CTCLoss, mx.nd.contrib.ctc_loss, mx.nd.contrib.CTCLoss):
        np.testing.assert_array_equal(fn(data, label).asnumpy(), want)


@pytest.mark.parametrize("shapes, message", [
    (((6, 3), (3, 2)), "data must be \\(time, batch, classes\\)"),
    (((6, 3, 5), (2, 2)), "label \\(batch, max label length\\)"),
])
def test_ctc_loss_shape_errors_name_the_operator(shapes, message):
    with pytest.raises(Exception, match=message) as info:
        mx.nd.ctc_loss(mx.nd.zeros(shapes[0]), mx.nd.zeros(shapes[1]))
    assert "CTCLoss" in str(info.value)
