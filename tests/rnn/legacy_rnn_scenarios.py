"""The same mx.rnn (legacy symbolic RNN) programs for graphc and for Apache MXNet 1.9.1: each
scenario takes the framework module (`import graphc as mx` or `import mxnet`) and returns plain
JSON-able answers. record_legacy_rnn_reference.py records MXNet's into
legacy_rnn_reference.json; test_legacy_rnn_vs_mxnet.py compares graphc's with them."""
import os
import random
import tempfile

import numpy as np


def _flat(states):
    """BidirectionalCell returns its states as [left states, right states]."""
    return [t for s in states for t in (s if isinstance(s, list) else [s])]


def _run_unrolled(mx, cell, shape, layout="NTC", merge=True, begin_state=None, length=3):
    """Unroll `cell` over a 'data' variable of `shape`, bind with numpy parameters drawn in
    sorted-name order, return names, shapes and the outputs (and final states)."""
    outputs, states = cell.unroll(length, inputs=mx.sym.var("data"), layout=layout, merge_outputs=merge,
                                  begin_state=begin_state)
    heads = ([outputs] if merge else list(outputs)) + _flat(states)
    sym = mx.sym.Group(heads)
    names = sym.list_arguments()
    arg_shapes, out_shapes, _ = sym.infer_shape(data=shape)
    by_name = dict(zip(names, arg_shapes))
    rs = np.random.RandomState(1)
    args = {n: mx.nd.array(rs.uniform(-0.5, 0.5, by_name[n])) for n in sorted(names)}
    outs = sym.bind(mx.cpu(), args=args).forward()
    return {"arguments": sorted(names), "arg_shapes": {n: list(s) for n, s in by_name.items()},
            "out_shapes": [list(s) for s in out_shapes],
            "outputs": [o.asnumpy().round(6).tolist() for o in outs]}


def lstm_ntc_merged(mx):
    return _run_unrolled(mx, mx.rnn.LSTMCell(5, prefix="lstm_"), (2, 3, 4))


def gru_list_outputs(mx):
    return _run_unrolled(mx, mx.rnn.GRUCell(5, prefix="gru_"), (2, 3, 4), merge=False)


def rnn_relu_tnc(mx):
    return _run_unrolled(mx, mx.rnn.RNNCell(5, activation="relu", prefix="rnn_"), (3, 2, 4), layout="TNC")


def stacked_dropout_residual(mx):
    stack = mx.rnn.SequentialRNNCell()
    stack.add(mx.rnn.LSTMCell(5, prefix="l0_"))
    stack.add(mx.rnn.DropoutCell(0.0))
    stack.add(mx.rnn.ResidualCell(mx.rnn.GRUCell(5, prefix="l1_")))
    return _run_unrolled(mx, stack, (2, 3, 4))


def bidirectional_merged(mx):
    return _run_unrolled(mx, mx.rnn.BidirectionalCell(mx.rnn.LSTMCell(3, prefix="l_"), mx.rnn.GRUCell(3, prefix="r_")),
                         (2, 3, 4))


def bidirectional_list(mx):
    cell = mx.rnn.BidirectionalCell(mx.rnn.RNNCell(3, prefix="l_"), mx.rnn.RNNCell(3, prefix="r_"), output_prefix="b_")
    return _run_unrolled(mx, cell, (2, 3, 4), merge=False)


def fused_lstm_two_layers_tnc(mx):
    cell = mx.rnn.FusedRNNCell(5, num_layers=2, mode="lstm", prefix="f_", get_next_state=True)
    return _run_unrolled(mx, cell, (3, 2, 4), layout="TNC")


def fused_bidirectional_gru_ntc(mx):
    cell = mx.rnn.FusedRNNCell(5, num_layers=1, mode="gru", bidirectional=True, prefix="g_", get_next_state=True)
    return _run_unrolled(mx, cell, (2, 3, 4))


def zoneout_inference(mx):
    return _run_unrolled(mx, mx.rnn.ZoneoutCell(mx.rnn.LSTMCell(4, prefix="z_"), 0.3, 0.3), (2, 3, 4))


def conv_lstm(mx):
    return _run_unrolled(mx, mx.rnn.ConvLSTMCell((2, 3, 5, 5), 2, prefix="cl_"), (2, 2, 3, 5, 5), length=2)


def conv_gru_strided(mx):
    cell = mx.rnn.ConvGRUCell((2, 3, 6, 6), 2, i2h_kernel=(3, 3), i2h_stride=(2, 2), i2h_pad=(1, 1), prefix="cg_")
    return _run_unrolled(mx, cell, (2, 2, 3, 6, 6), length=2)


def variable_begin_states(mx):
    """Begin states as variables (shape (0, H)): their batch size comes from shape inference."""
    stack = mx.rnn.SequentialRNNCell()
    for i in range(2):
        stack.add(mx.rnn.LSTMCell(6, prefix="lstm_l%d_" % i))
    begin = stack.begin_state(func=mx.sym.Variable)
    _, states = stack.unroll(4, begin_state=begin, inputs=mx.sym.Variable("data"))
    args, outs, _ = mx.sym.Group(states).infer_shape(data=(3, 4, 5))
    return {"begin": [s.name for s in begin], "state_info": [dict(i, shape=list(i["shape"])) for i in stack.state_info],
            "args": [list(a) for a in args], "outs": [list(o) for o in outs]}


def unpack_pack_weights(mx):
    """unpack_weights splits gates (MXNet's names and rows); FusedRNNCell's packed vector
    unpacks to the unfused cells' names; pack_weights inverts both."""
    rs = np.random.RandomState(2)
    lstm = mx.rnn.LSTMCell(3, prefix="c_")
    args = {"c_i2h_weight": mx.nd.array(rs.randn(12, 2)), "c_i2h_bias": mx.nd.array(rs.randn(12)),
            "c_h2h_weight": mx.nd.array(rs.randn(12, 3)), "c_h2h_bias": mx.nd.array(rs.randn(12))}
    unpacked = lstm.unpack_weights(args)
    repacked = lstm.pack_weights(unpacked)
    fused = mx.rnn.FusedRNNCell(3, num_layers=2, mode="gru", bidirectional=True, prefix="f_")
    size = 2 * 3 * 3 * (2 + 3 + 2) + 2 * 3 * 3 * (2 * 3 + 3 + 2)
    packed = {"f_parameters": mx.nd.array(np.arange(size, dtype=np.float32))}
    f_unpacked = fused.unpack_weights(packed)
    f_repacked = fused.pack_weights(f_unpacked)
    unfused = fused.unfuse()
    return {"lstm_unpacked": {k: v.asnumpy().round(6).tolist() for k, v in unpacked.items()},
            "lstm_roundtrip": all(np.array_equal(repacked[k].asnumpy(), args[k].asnumpy()) for k in args),
            "fused_unpacked": {k: [list(v.shape), float(v.asnumpy().sum())] for k, v in f_unpacked.items()},
            "fused_roundtrip": bool(np.array_equal(f_repacked["f_parameters"].asnumpy(), np.arange(size))),
            "unfused_params": sorted(unfused.params._params)}


def encode_and_bucket(mx):
    random.seed(3)
    np.random.seed(3)
    lines = [["a", "b", "c"], ["b", "d"], ["e", "a", "a", "f", "g"], ["c"], ["d", "d", "b", "a"]] * 3
    sent, vocab = mx.rnn.encode_sentences(lines, invalid_label=0, start_label=1)
    more, vocab2 = mx.rnn.encode_sentences([["a", "zz"]], vocab=dict(vocab), unknown_token="<unk>")
    it = mx.rnn.BucketSentenceIter(sent, 3, buckets=[2, 4], invalid_label=0)
    batches = [(b.bucket_key, b.data[0].asnumpy().tolist(), b.label[0].asnumpy().tolist(),
                [list(d.shape) for d in b.provide_data]) for b in it]
    tn = mx.rnn.BucketSentenceIter(sent, 3, invalid_label=0, layout="TN")
    return {"sent": sent, "vocab": sorted(vocab.items()), "more": more, "vocab2": sorted(vocab2.items()),
            "buckets": it.buckets, "default": it.default_bucket_key, "batches": sorted(batches),
            "tn_buckets": tn.buckets, "tn_shape": [list(d.shape) for d in tn.provide_data]}


def _lm_data(mx):
    rs = np.random.RandomState(0)
    words = ["w%d" % i for i in range(12)]
    lines = [[words[j] for j in rs.randint(0, 12, rs.randint(2, 9))] for _ in range(64)]
    return mx.rnn.encode_sentences(lines, invalid_label=0, start_label=1)


def bucketing_lstm_fit(mx):
    """lstm_bucketing.py in small: stacked LSTMCells unrolled per bucket, BucketingModule.fit
    with Perplexity, an RNN checkpoint each epoch (weights unpacked per gate on disk)."""
    random.seed(3)
    np.random.seed(3)
    sent, vocab = _lm_data(mx)
    it = mx.rnn.BucketSentenceIter(sent, 8, buckets=[4, 8], invalid_label=0)
    hidden, embed, words = 6, 5, len(vocab) + 1
    stack = mx.rnn.SequentialRNNCell()
    for i in range(2):
        stack.add(mx.rnn.LSTMCell(num_hidden=hidden, prefix="lstm_l%d_" % i))

    def sym_gen(seq_len):
        data = mx.sym.Embedding(data=mx.sym.Variable("data"), input_dim=words, output_dim=embed, name="embed")
        stack.reset()
        outputs = stack.unroll(seq_len, inputs=data, merge_outputs=True)[0]
        pred = mx.sym.FullyConnected(data=mx.sym.Reshape(outputs, shape=(-1, hidden)), num_hidden=words, name="pred")
        label = mx.sym.Reshape(mx.sym.Variable("softmax_label"), shape=(-1,))
        return mx.sym.SoftmaxOutput(data=pred, label=label, name="softmax"), ("data",), ("softmax_label",)

    sym = sym_gen(8)[0]
    shapes = dict(zip(sym.list_arguments(), sym.infer_shape(data=(8, 8), softmax_label=(8, 8))[0]))
    rs = np.random.RandomState(5)
    args = {k: mx.nd.array(rs.uniform(-0.3, 0.3, s)) for k, s in sorted(shapes.items())
            if k not in ("data", "softmax_label")}
    model = mx.mod.BucketingModule(sym_gen=sym_gen, default_bucket_key=it.default_bucket_key, context=mx.cpu(0))
    metric = mx.metric.Perplexity(0)
    with tempfile.TemporaryDirectory() as tmp:
        prefix = os.path.join(tmp, "lstm")
        model.fit(it, eval_data=it, eval_metric=metric, optimizer="sgd",
                  optimizer_params={"learning_rate": 0.5, "wd": 1e-5}, arg_params=args, num_epoch=2,
                  epoch_end_callback=mx.rnn.do_rnn_checkpoint(stack, prefix, 1))
        on_disk = mx.nd.load(prefix + "-0002.params")
        _, packed, _ = mx.rnn.load_rnn_checkpoint(stack, prefix, 2)
    params = model.get_params()[0]
    return {"params": {k: v.asnumpy().round(5).tolist() for k, v in sorted(params.items())},
            "perplexity": metric.get()[1], "disk_keys": sorted(on_disk),
            "disk_i2h_f": on_disk["arg:lstm_l1_i2h_f_weight"].asnumpy().round(5).tolist(),
            "packed_keys": sorted(packed)}


def fused_checkpoint_unfused_score(mx):
    """cudnn_rnn_bucketing.py's flow: parameters of a FusedRNNCell saved unpacked, loaded into
    its unfuse()d stack, scored; the fused and unfused networks give the same perplexity."""
    random.seed(4)
    np.random.seed(4)
    sent, vocab = _lm_data(mx)
    hidden, embed, words = 4, 3, len(vocab) + 1
    fused = mx.rnn.FusedRNNCell(hidden, num_layers=2, mode="lstm", prefix="lstm_")
    unfused = fused.unfuse()

    def sym_gen_for(cell, layout):
        def sym_gen(seq_len):
            data = mx.sym.Embedding(data=mx.sym.Variable("data"), input_dim=words, output_dim=embed, name="embed")
            cell.reset()
            outputs = cell.unroll(seq_len, inputs=data, merge_outputs=True, layout=layout)[0]
            pred = mx.sym.FullyConnected(mx.sym.Reshape(outputs, shape=(-1, hidden)), num_hidden=words, name="pred")
            label = mx.sym.Reshape(mx.sym.Variable("softmax_label"), shape=(-1,))
            return mx.sym.SoftmaxOutput(data=pred, label=label, name="softmax"), ("data",), ("softmax_label",)
        return sym_gen

    rs = np.random.RandomState(6)
    size = 4 * hidden * (embed + hidden + 2) + 4 * hidden * (hidden + hidden + 2)
    args = {"embed_weight": mx.nd.array(rs.uniform(-.5, .5, (words, embed))),
            "lstm_parameters": mx.nd.array(rs.uniform(-.5, .5, (size,))),
            "pred_weight": mx.nd.array(rs.uniform(-.5, .5, (words, hidden))), "pred_bias": mx.nd.zeros((words,))}
    scores = {}
    with tempfile.TemporaryDirectory() as tmp:
        prefix = os.path.join(tmp, "fused")
        mx.rnn.save_rnn_checkpoint(fused, prefix, 1, sym_gen_for(fused, "TNC")(8)[0], args, {})
        for name, cell, layout in (("fused", fused, "TN"), ("unfused", unfused, "NT")):
            random.seed(4)      # the same batches for both (an iterator drops a shuffled remainder)
            np.random.seed(4)
            it = mx.rnn.BucketSentenceIter(sent, 8, buckets=[4, 8], invalid_label=0, layout=layout)
            model = mx.mod.BucketingModule(sym_gen=sym_gen_for(cell, layout + "C"), default_bucket_key=8,
                                           context=mx.cpu(0))
            model.bind(it.provide_data, it.provide_label, for_training=False)
            _, arg, aux = mx.rnn.load_rnn_checkpoint(cell, prefix, 1)
            model.set_params(arg, aux)
            metric = mx.metric.Perplexity(0)
            model.score(it, metric)
            scores[name] = metric.get()[1]
            scores[name + "_keys"] = sorted(arg)
    return scores


SCENARIOS = [lstm_ntc_merged, gru_list_outputs, rnn_relu_tnc, stacked_dropout_residual, bidirectional_merged,
             bidirectional_list, fused_lstm_two_layers_tnc, fused_bidirectional_gru_ntc, zoneout_inference, conv_lstm,
             conv_gru_strided, variable_begin_states, unpack_pack_weights, encode_and_bucket, bucketing_lstm_fit,
             fused_checkpoint_unfused_score]
