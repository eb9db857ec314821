"""Calls MXNet 1.9.1 accepts either work in graphc or are refused with a message that names what
is refused and says "not supported" (issue 13 part 10: never "attribute ctx=cpu(0) is not a valid
str"). The calls live in message_cases.py; the live test checks MXNet accepts every one."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import graphc as mx

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MXNET_PYTHON = os.environ.get("GRAPHC_MXNET_PYTHON", os.path.join(ROOT, "bench", ".venvs", "mxnet", "bin", "python"))
sys.path.insert(0, HERE)
import message_cases  # noqa: E402


@pytest.mark.parametrize("call", message_cases.WORKING)
def test_an_mxnet_valid_call_runs(call):
    assert message_cases.run(call) == "ok"


@pytest.mark.parametrize("call,word", message_cases.REFUSED)
def test_an_unsupported_call_says_so_plainly(call, word):
    result = message_cases.run(call)
    assert result != "ok", f"{call} was expected to be refused"
    assert "not supported" in result and word in result, result


def test_a_context_passed_to_a_symbol_creation_function_is_its_string():
    out = mx.sym.ones((2, 3), ctx=mx.cpu())
    assert out.list_attr()["ctx"] == "cpu(0)"
    np.testing.assert_array_equal(out.eval()[0].asnumpy(), np.ones((2, 3)))


def test_attr_on_an_operator_sets_node_attributes_as_mxnet_does():
    fc = mx.sym.FullyConnected(mx.sym.var("d"), num_hidden=3, name="fc", attr={"lr_mult": "2", "ctx_group": "a"})
    # recorded from MXNet 1.9.1
    assert fc.list_attr() == {"num_hidden": "3", "__ctx_group__": "a", "ctx_group": "a", "__lr_mult__": "2",
                              "lr_mult": "2"}


@pytest.mark.parametrize("namespace", [mx.nd, mx.sym])
def test_a_name_graphc_lacks_says_not_supported_and_hasattr_can_probe(namespace):
    name = "an_operator_nobody_declared"
    assert not hasattr(namespace, name)
    with pytest.raises(AttributeError, match=f"'{name}': not supported"):
        getattr(namespace, name)


@pytest.mark.skipif(not os.path.exists(MXNET_PYTHON), reason="MXNet 1.9.1 venv (bench/.venvs/mxnet) not installed")
def test_live_mxnet_accepts_every_call():
    proc = subprocess.run([MXNET_PYTHON, os.path.join(HERE, "message_cases.py"), "mxnet"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    failed = {k: v for k, v in json.loads(proc.stdout).items() if v != "ok"}
    assert not failed, failed
