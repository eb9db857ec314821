"""Regenerate the fixtures beside this file with MXNet 1.9.1 (run it with the MXNet venv's
python: bench/.venvs/mxnet/bin/python tests/gluon/fixtures_rnn/make_fixtures.py).

Writes, for the cases of rnn_cases.py:
- unroll.npz: for each cell unrolled over sym.Variable inputs, its argument names, output
  names and the outputs (then states) evaluated on rnn_cases.bind_values, and (without
  dropout, which training mode would draw) the gradients of sum(outputs * rnn_cases.heads);
- <layer>.params (what save_parameters writes, `_unfused.*` names) and <layer>.npz: input,
  begin states, outputs and new states; for layers MXNet can train on CPU also the gradients
  of sum(outputs * head) + sum(states * head) for the input and every parameter;
- unfused_stack.params / unfused_stack.npz: a 2-layer bidirectional LSTM's `_unfuse()` cell
  stack (names `0.l_cell.i2h_weight`...) unrolled with valid_length, which is what the fused
  layer with use_sequence_length must compute (MXNet's CPU RNN kernel ignores the lengths),
  with the gradients of sum(outputs * head) + sum(states * head);
  It is unrolled in TNC: MXNet 1.9.1's BidirectionalCell stacks an NDArray stack's outputs
  twice when unrolled in NTC with valid_length inside a sequential stack.
"""
import os
import sys

import mxnet as mx
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import rnn_cases as rc  # noqa: E402


def unroll_fixtures():
    out = {}
    for name in rc.UNROLL_CASES:
        sym, _ = rc.unroll_symbol(mx, name)
        args = sym.list_arguments()
        arg_shapes, _, _ = sym.infer_shape(**rc.input_shapes(name))
        vals = rc.bind_values(args, arg_shapes)
        res = sym.eval(ctx=mx.cpu(), **{k: mx.nd.array(v) for k, v in vals.items()})
        out[f"{name}.args"] = np.array(args)
        out[f"{name}.outputs"] = np.array(sym.list_outputs())
        for i, r in enumerate(res):
            out[f"{name}.out{i}"] = r.asnumpy()
        if rc.differentiable(name):
            exe = sym.simple_bind(mx.cpu(), grad_req={a: "null" if a == "valid_length" else "write" for a in args},
                                  **rc.input_shapes(name))
            for a in args:
                exe.arg_dict[a][:] = vals[a]
            exe.forward(is_train=True)
            exe.backward([mx.nd.array(h) for h in rc.heads(name, [r.shape for r in res], sym.list_outputs())])
            for a in args:
                if a != "valid_length":
                    out[f"{name}.grad:{a}"] = exe.grad_dict[a].asnumpy()
    np.savez(os.path.join(HERE, "unroll.npz"), **out)


def layer_fixture(name):
    build, shape, with_states, trainable = rc.LAYER_CASES[name]
    block = build(mx)
    rc.set_layer_params(block)
    block.save_parameters(os.path.join(HERE, f"{name}.params"))
    x = mx.nd.array(rc.values("input", shape))
    record = {"input": x.asnumpy()}
    states = [mx.nd.array(s) for s in rc.layer_states(block)] if with_states else None
    for i, s in enumerate(states or []):
        record[f"state{i}"] = s.asnumpy()
    params = block._collect_params_with_prefix()
    x.attach_grad()
    # MXNet's CPU kernel cannot record LSTMP ("No training support for LSTM with projection")
    with mx.autograd.record(train_mode=False) if trainable else mx.autograd.pause():
        res = block(x, states) if with_states else block(x)
        outs = [res[0]] + list(res[1]) if with_states else [res]
        loss = sum((o * mx.nd.array(rc.values(f"head{i}", o.shape))).sum() for i, o in enumerate(outs))
    for i, o in enumerate(outs):
        record[f"out{i}"] = o.asnumpy()
    if trainable:
        loss.backward()
        record["grad:input"] = x.grad.asnumpy()
        for key, p in params.items():
            record[f"grad:{key}"] = p.grad().asnumpy()
    np.savez(os.path.join(HERE, f"{name}.npz"), **record)


def unfused_stack_fixture():
    layer = mx.gluon.rnn.LSTM(rc.H, num_layers=2, bidirectional=True, input_size=rc.C, prefix="ulstm_")
    rc.set_layer_params(layer)
    stack = layer._unfuse()
    stack.save_parameters(os.path.join(HERE, "unfused_stack.params"))
    x = rc.values("input", (rc.T, rc.N, rc.C))
    states = [mx.nd.array(rc.values(f"cell_state{i}", info["shape"])) for i, info in
              enumerate(stack.state_info(rc.N))]
    xs = mx.nd.array(x)
    xs.attach_grad()
    with mx.autograd.record(train_mode=False):
        out, new_states = stack.unroll(rc.T, xs, begin_state=states, layout="TNC", merge_outputs=True,
                                       valid_length=mx.nd.array(rc.VALID))
        loss = sum((o * mx.nd.array(rc.values(f"head{i}", o.shape))).sum()
                   for i, o in enumerate([out] + list(new_states)))
    loss.backward()
    record = {"input": x, "out": out.asnumpy(), "grad:input": xs.grad.asnumpy()}
    for i, (s, n) in enumerate(zip(states, new_states)):
        record[f"state{i}"], record[f"new_state{i}"] = s.asnumpy(), n.asnumpy()
    for key, p in stack._collect_params_with_prefix().items():
        record[f"grad:{key}"] = p.grad().asnumpy()
    np.savez(os.path.join(HERE, "unfused_stack.npz"), **record)


if __name__ == "__main__":
    assert mx.__version__ == "1.9.1", f"the fixtures record MXNet 1.9.1, this is {mx.__version__}"
    unroll_fixtures()
    for case in rc.LAYER_CASES:
        layer_fixture(case)
    unfused_stack_fixture()
    print("wrote", sorted(os.listdir(HERE)))
