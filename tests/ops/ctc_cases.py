"""Cases for the CTCLoss operator (nd.ctc_loss), run alike under Apache MXNet 1.9.1 and graphc:
`python ctc_cases.py mxnet|graphc` prints {case: {"loss": ..., "grad": ...}} as JSON, the
gradient being that of sum(loss * HEAD) with respect to the activations. They pin MXNet's padding
rules: with blank_label 'first' a label row ends at its first 0, with 'last' at its first -1,
and explicit label_lengths / data_lengths override both. test_ctc_loss.py compares graphc with
the answers recorded from MXNet (mxnet_ctc_reference.json) and, where MXNet's venv exists, with
live ones."""
import json
import sys

import numpy as np

DATA = np.random.RandomState(0).randn(6, 3, 5).astype(np.float32)     # (T, N, C)
HEAD = np.array([1.0, 2.0, 0.5], np.float32)
CASES = {
    "first_padded_with_0": ([[1, 2, 0], [3, 3, 0], [4, 1, 2]], {"blank_label": "first"}, None, None),
    "last_padded_with_minus_1": ([[0, 1, -1], [2, 2, -1], [3, 0, 1]], {"blank_label": "last"}, None, None),
    "first_stops_at_the_first_0": ([[1, 0, 2], [0, 3, 3], [4, 1, 2]], {}, None, None),
    "last_keeps_0_as_a_label": ([[0, 0, 1], [-1, 2, 2], [3, 3, 3]], {"blank_label": "last"}, None, None),
    "both_lengths": ([[1, 2, 3], [3, 3, 1], [4, 1, 2]], {"use_data_lengths": True, "use_label_lengths": True},
                     [6, 4, 5], [2, 3, 1]),
    "label_lengths_ignore_padding": ([[1, 2, 3], [3, 3, 0], [4, 0, 2]], {"use_label_lengths": True}, None,
                                     [3, 2, 1]),
    "data_lengths_last": ([[0, 1, -1], [2, -1, -1], [3, 0, 1]],
                          {"use_data_lengths": True, "blank_label": "last"}, [5, 2, 6], None),
}
# cases where only the losses agree. A label that cannot fit its input length: loss 0 in both;
# MXNet's gradient is whatever its partial recursion left (its documentation calls it undefined),
# graphc's is 0. A label that names the blank class (possible only with label_lengths): MXNet's
# gradient for the blank's column misses the label states of that class; graphc's is the
# derivative of the loss (test_ctc_loss.py checks it by finite differences).
LOSS_ONLY = {"infeasible_item_is_0": ([[1, 1, 1], [2, 2, 2], [1, 2, 3]], {"use_data_lengths": True}, [3, 6, 2],
                                      None),
             "label_naming_the_blank": ([[1, 0, 3], [3, 3, 1], [0, 1, 2]], {"use_label_lengths": True}, None,
                                        [3, 2, 1])}


def run_case(mx, label, attrs, data_lengths, label_lengths):
    data = mx.nd.array(DATA)
    data.attach_grad()
    args = [data, mx.nd.array(np.array(label, np.float32))]
    args += [mx.nd.array(np.array(x, np.float32)) for x in (data_lengths, label_lengths) if x is not None]
    with mx.autograd.record():
        loss = mx.nd.ctc_loss(*args, **attrs)
    loss.backward(mx.nd.array(HEAD))
    return {"loss": loss.asnumpy().tolist(), "grad": data.grad.asnumpy().tolist()}


def all_cases(mx):
    out = {name: run_case(mx, *case) for name, case in CASES.items()}
    out.update({name: {"loss": run_case(mx, *case)["loss"]} for name, case in LOSS_ONLY.items()})
    return out


if __name__ == "__main__":
    if sys.argv[1] == "mxnet":
        import mxnet as mx
    else:
        import graphc as mx
    print(json.dumps(all_cases(mx)))
