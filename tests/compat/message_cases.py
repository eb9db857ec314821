"""MXNet-valid calls for test_messages.py: every line runs under MXNet 1.9.1 (checked live by the
test when bench/.venvs/mxnet exists). `python message_cases.py mxnet|graphc` prints, as JSON, each
call with "ok" or the error it raised."""
import json
import sys

import numpy as np

if len(sys.argv) > 1 and sys.argv[1] == "mxnet":
    import mxnet as mx
else:
    import graphc as mx

nd = mx.nd

# calls graphc must run (each was checked under MXNet 1.9.1)
WORKING = r"""
nd.ones((2,3), ctx=mx.cpu(0))
mx.optimizer.create('lbsgd', momentum=0.9, batch_scale=2, warmup_strategy='sqrt')
nd.ones((2,3), ctx=mx.cpu(0), dtype='float16')
nd.zeros((2,3), ctx=mx.cpu(), dtype=np.int32, stype='default')
nd.empty((2,3), ctx=mx.cpu(), dtype='float64')
nd.full((2,2), 3, ctx=mx.cpu(), dtype='int64')
nd.array([1,2], ctx=mx.cpu(), dtype='float16')
nd.array([1,2], ctx=mx.cpu_pinned(), dtype=np.int64)
nd.arange(0, 5, ctx=mx.cpu(), dtype='int32')
nd.arange(0, 5, 2, repeat=2, ctx=mx.cpu())
nd.eye(3, ctx=mx.cpu(), dtype='float64')
nd.linspace(0, 1, 5, ctx=mx.cpu(), dtype='float64')
nd.zeros_like(x)
nd.ones_like(x)
nd.random.uniform(0, 1, shape=(2,2), ctx=mx.cpu(), dtype='float64')
nd.random.normal(loc=0, scale=1, shape=(2,), ctx=mx.cpu(), dtype='float16')
nd.random.randint(0, 10, shape=(3,), ctx=mx.cpu(), dtype='int32')
nd.random.shuffle(x)
nd.random.multinomial(nd.array([[0.5,0.5]]), shape=3)
nd.random.poisson(lam=2, shape=(2,), ctx=mx.cpu())
nd.random.exponential(scale=2, shape=(2,), ctx=mx.cpu())
nd.random.gamma(alpha=2, beta=1, shape=(2,), ctx=mx.cpu())
nd.sum(x, axis=1, keepdims=True, exclude=False)
nd.mean(x, axis=(0,1))
nd.max(x, axis=0, keepdims=True)
nd.norm(x, ord=2, axis=1, keepdims=False)
nd.softmax(x, axis=-1, temperature=1.0, dtype='float64')
nd.log_softmax(x, axis=1)
nd.one_hot(idx, depth=5, dtype='float16', on_value=2.0, off_value=0.5)
nd.cast(x, dtype='int32')
nd.Cast(x, dtype=np.float16)
nd.take(x, idx, axis=1, mode='clip')
nd.pick(x, nd.array([0,1]), axis=1, keepdims=True, mode='wrap')
nd.topk(x, k=2, axis=1, ret_typ='both', dtype='int32', is_ascend=False)
nd.sort(x, axis=1, is_ascend=False)
nd.argsort(x, axis=1, dtype='int64')
nd.argmax(x, axis=1, keepdims=True)
nd.dot(x, x, transpose_b=True, forward_stype='default')
nd.batch_dot(x.reshape((1,2,3)), x.reshape((1,3,2)), transpose_a=False)
nd.FullyConnected(x, w, b, num_hidden=4, flatten=True, no_bias=False)
nd.FullyConnected(data=x, weight=w, bias=b, num_hidden=4)
nd.broadcast_maximum(x, x, axis=1)
nd.broadcast_add(x, x, name='foo')
nd.broadcast_to(nd.ones((1,3)), shape=(2,3))
nd.broadcast_axis(nd.ones((1,3)), axis=0, size=2)
nd.clip(x, a_min=1, a_max=3)
nd.where(x > 2, x, -x)
nd.relu(x)
nd.sigmoid(x)
nd.Activation(x, act_type='softrelu')
nd.LeakyReLU(x, act_type='leaky', slope=0.1)
nd.LeakyReLU(x, act_type='elu', slope=0.1)
nd.Dropout(x, p=0.5, mode='training', axes=(), cudnn_off=True)
nd.Reshape(x, shape=(3,2), reverse=False)
nd.reshape(x, shape=(-1,), reverse=False)
nd.transpose(x, axes=(1,0))
nd.expand_dims(x, axis=0)
nd.squeeze(nd.ones((1,3)), axis=0)
nd.flip(x, axis=1)
nd.tile(x, reps=(2,1))
nd.repeat(x, repeats=2, axis=0)
nd.pad(nd.ones((1,1,2,2)), mode='constant', pad_width=(0,0,0,0,1,1,1,1), constant_value=0)
nd.concat(x, x, dim=0)
nd.stack(x, x, axis=1)
nd.split(x, num_outputs=3, axis=1, squeeze_axis=False)
nd.slice(x, begin=(0,1), end=(2,3), step=(1,1))
nd.slice_axis(x, axis=1, begin=0, end=2)
nd.SequenceMask(x.reshape((2,3,1)), sequence_length=nd.array([1,2,2]), use_sequence_length=True, value=0)
nd.L2Normalization(x, mode='instance', eps=1e-10)
nd.LayerNorm(x, nd.ones((3,)), nd.zeros((3,)), axis=-1, eps=1e-5, output_mean_var=False)
nd.Embedding(idx, nd.ones((5,2)), input_dim=5, output_dim=2, dtype='float32', sparse_grad=False)
nd.smooth_l1(x, scalar=1.0)
nd.nansum(x, axis=1)
nd.nanprod(x, axis=1)
nd.moments(x, axes=(1,), keepdims=False)
nd.shape_array(x)
nd.size_array(x)
nd.diag(x, k=0)
nd.elemwise_add(x, x)
nd.add_n(x, x, x)
nd.ElementWiseSum(x, x)
nd.square(x, out=nd.zeros((2,3)))
nd.sqrt(x)
nd.round(x)
nd.gamma(x)
nd.erf(x)
nd.contrib.arange_like(x, axis=1)
x.astype('float16', copy=False)
x.astype(np.int32)
x.as_in_context(mx.cpu())
x.copyto(mx.cpu())
x.asnumpy()
x.tostype('default')
x.context
x.ctx
x.stype
x.grad
x.attach_grad(grad_req='add', stype='default')
x.wait_to_read()
nd.ones((1,)).asscalar()
x.sum(axis=1, keepdims=True)
x.mean()
x.reshape(3, 2)
x.reshape((3, -1))
x.reshape(shape=(6,))
x.flatten()
x.expand_dims(axis=1)
x.clip(0, 2)
x.softmax(axis=0)
x.topk(k=1)
x.abs()
x.slice_axis(axis=0, begin=0, end=1)
x.swapaxes(0, 1)
x.zeros_like()
x.ones_like()
x.norm()
x.tile(reps=(1,2))
mx.random.seed(42)
mx.random.seed(42, ctx='all')
mx.random.seed(42, ctx=mx.cpu())
mx.sym.var('v', stype='default')
mx.sym.var('v', stype='csr')
mx.sym.var('v', dtype=np.float16, shape=(2,3))
mx.sym.var('v', __layout__='NCHW')
mx.sym.var('v', init='zeros')
mx.sym.FullyConnected(mx.sym.var('d'), num_hidden=3, name='fc', attr={'lr_mult': '2'})
mx.sym.broadcast_maximum(mx.sym.var('a'), mx.sym.var('b'), axis=1)
mx.sym.zeros((2,3), dtype='int32')
mx.sym.ones((2,3), ctx=mx.cpu())
mx.gluon.nn.Dense(3, dtype='float64', in_units=2).initialize(ctx=mx.cpu())
mx.gluon.nn.Dense(3, use_bias=False, flatten=False, weight_initializer='xavier', bias_initializer='zeros')
mx.gluon.nn.Dense(3, weight_initializer=mx.init.Xavier(), activation='relu', prefix='d_', params=None)
mx.gluon.nn.Conv2D(4, 3, strides=1, padding=1, dilation=1, groups=1, layout='NCHW', in_channels=2, activation='relu', use_bias=True)
mx.gluon.nn.BatchNorm(axis=1, momentum=0.9, epsilon=1e-5, center=True, scale=True, use_global_stats=False, in_channels=3)
mx.gluon.nn.Embedding(10, 4, dtype='float32', weight_initializer=None, sparse_grad=False)
mx.gluon.nn.Dropout(0.5, axes=())
mx.gluon.nn.LayerNorm(axis=-1, epsilon=1e-5, center=True, scale=True, in_channels=3)
mx.gluon.nn.HybridSequential(prefix='s_')
mx.gluon.Parameter('p', shape=(2,), init='zeros', lr_mult=0.5, wd_mult=0.0, dtype='float64', grad_req='write', allow_deferred_init=True, differentiable=True, stype='default', grad_stype='default')
mx.gluon.loss.SoftmaxCrossEntropyLoss(axis=-1, sparse_label=True, from_logits=False, weight=None, batch_axis=0)
mx.gluon.loss.L2Loss(weight=1.0, batch_axis=0)
mx.gluon.data.DataLoader(mx.gluon.data.ArrayDataset(np.arange(10)), batch_size=2, shuffle=True, last_batch='rollover', num_workers=0, pin_memory=False, pin_device_id=0, prefetch=None, thread_pool=False, timeout=120)
mx.gluon.data.DataLoader(mx.gluon.data.ArrayDataset(np.arange(10)), batch_size=2, auto_reload=True)
mx.gluon.utils.split_and_load(nd.ones((4,2)), [mx.cpu()], batch_axis=0, even_split=True)
mx.init.Xavier(rnd_type='gaussian', factor_type='in', magnitude=2.34)
mx.init.Normal(sigma=0.02)
mx.init.Uniform(scale=0.07)
mx.init.MSRAPrelu(factor_type='avg', slope=0.25)
mx.init.Constant(0.5)
mx.optimizer.Adam(learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8, lazy_update=True, wd=0.0, rescale_grad=1.0, clip_gradient=None, multi_precision=False)
mx.optimizer.SGD(learning_rate=0.1, momentum=0.9, lazy_update=True, multi_precision=False)
mx.lr_scheduler.FactorScheduler(step=10, factor=0.5, stop_factor_lr=1e-8, base_lr=0.01, warmup_steps=0, warmup_begin_lr=0, warmup_mode='linear')
mx.metric.Accuracy(axis=1, name='accuracy', output_names=None, label_names=None)
mx.metric.create('acc')
mx.kv.create('local')
mx.context.num_gpus()
mx.current_context()
mx.cpu(0).device_type
mx.Context('cpu', 0)
mx.autograd.set_training(False)
mx.autograd.set_recording(False)
mx.autograd.is_training()
mx.test_utils.assert_almost_equal(x, x, rtol=1e-5, atol=1e-7, names=('a','b'), equal_nan=False)
mx.nd.waitall()
""".strip().splitlines()

# calls MXNet runs that graphc refuses: (call, a word the refusal must name); the message must
# also say "not supported". (Sparse storage is left out: nd.sparse is being built.)
REFUSED = [
    ("mx.kv.create('horovod')", "horovod"),
    ("mx.kv.create('byteps')", "byteps"),
]


def fixtures():
    return {"mx": mx, "nd": nd, "np": np, "x": nd.array([[1., 2., 3.], [4., 5., 6.]]), "w": nd.ones((4, 3)),
            "b": nd.zeros((4,)), "idx": nd.array([0, 2, 1])}


def run(call):
    """"ok", or the error as 'Type: message'."""
    try:
        eval(call, fixtures())
        mx.nd.waitall()     # MXNet reports an asynchronous failure here, against the call that made it
        return "ok"
    except Exception as exc:     # noqa: BLE001  (the caller inspects what was raised)
        return f"{type(exc).__name__}: {exc}"


if __name__ == "__main__":
    print(json.dumps({c: run(c) for c in WORKING + [c for c, _ in REFUSED]}))
