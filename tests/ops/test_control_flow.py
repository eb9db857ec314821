"""contrib.foreach / while_loop / cond (graphc/control_flow.py): eager runs and traced
(hybridized) runs agree in values and gradients, gradients agree with finite differences, and a
traced branch that is not taken never poisons gradients with its NaN/inf."""
import numpy as np
import pytest

import graphc as mx
from graphc import autograd, gluon, nd
from graphc.ops.errors import GraphcError


def _f64(a):
    return nd.array(np.asarray(a, np.float64), dtype="float64")


class Lambda(gluon.HybridBlock):
    """hybrid_forward(F, *xs) = fn(F, *xs): a block around a function, to run it both ways."""

    def __init__(self, fn):
        super().__init__()
        self._fn = fn

    def hybrid_forward(self, F, *xs):
        return self._fn(F, *xs)


def _run(fn, arrays, hybrid, head=None):
    """(outputs, gradients of sum(outputs[0] * head) for each array) of fn run eagerly or hybridized."""
    block = Lambda(fn)
    if hybrid:
        block.hybridize()
    xs = [_f64(a) for a in arrays]
    for x in xs:
        x.attach_grad()
    with autograd.record():
        outs = block(*xs)
        outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
        h = np.ones(outs[0].shape) if head is None else head
        loss = (outs[0] * _f64(h)).sum()
    loss.backward()
    return [o.asnumpy() for o in outs], [x.grad.asnumpy() for x in xs]


def _both_ways_agree(fn, arrays, head=None):
    eager, g_eager = _run(fn, arrays, False, head)
    traced, g_traced = _run(fn, arrays, True, head)
    for a, b in zip(eager, traced):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)
    for a, b in zip(g_eager, g_traced):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)
    return eager, g_eager


def _finite_differences(fn, arrays, head, eps=1e-6):
    def f(arrs):
        out = Lambda(fn)(*[_f64(a) for a in arrs])
        out = out[0] if isinstance(out, (list, tuple)) else out
        return float(np.sum(out.asnumpy() * head))
    grads = []
    for i, x in enumerate(arrays):
        g = np.zeros(x.shape)
        for k in np.ndindex(*x.shape):
            up = [a.copy() for a in arrays]
            down = [a.copy() for a in arrays]
            up[i][k] += eps
            down[i][k] -= eps
            g[k] = (f(up) - f(down)) / (2 * eps)
        grads.append(g)
    return grads


# -- cond ------------------------------------------------------------------------------------------

def _log_or_triple(F, x):
    return F.contrib.cond(x.sum() > 0, lambda: F.log(x) * 2, lambda: x * 3)


def test_traced_cond_gradient_is_not_poisoned_by_the_untaken_branch():
    # log(0) = -inf and log(-1) = NaN in the untaken branch; its backward forms 0 * inf
    (y,), (g,) = _run(_log_or_triple, [np.array([0.0, -1.0])], hybrid=True)
    np.testing.assert_array_equal(y, [0.0, -3.0])
    np.testing.assert_array_equal(g, [3.0, 3.0])


def test_a_hybridized_cond_is_one_compiled_graph_of_gates_and_a_select():
    block = Lambda(_log_or_triple)
    block.hybridize()
    block(_f64([1.0, 2.0]))
    text = str(block._cached_op.last.graph)
    assert text.count("_cond_gate(") == 2 and text.count("_cond_select(") == 1, text


def test_a_plain_where_would_have_been_poisoned():
    # the premise of the gate: selecting with where() alone lets the untaken branch's NaN through
    def with_where(F, x):
        return F.where(F.broadcast_like(x.sum() > 0, x), F.log(x) * 2, x * 3)
    with np.errstate(all="ignore"):
        _, (g,) = _run(with_where, [np.array([0.0, -1.0])], hybrid=True)
    assert np.isnan(g).any()


def _quadratic_or_cube(F, x):
    return F.contrib.cond(x.sum() > 0, lambda: x * x, lambda: x * x * x)


@pytest.mark.parametrize("fn, x", [(_log_or_triple, [1.0, 4.0]), (_log_or_triple, [-1.0, -4.0]),
                                   (_quadratic_or_cube, [0.5, -0.25]), (_quadratic_or_cube, [-0.5, 0.25])])
def test_cond_eager_and_traced_agree_with_finite_differences(fn, x):
    x, head = np.array(x), np.array([0.7, -1.3])
    _, grads = _both_ways_agree(fn, [x], head)
    np.testing.assert_allclose(grads[0], _finite_differences(fn, [x], head)[0], rtol=1e-6, atol=1e-8)


class DenseInBranch(gluon.HybridBlock):
    """A layer whose parameters are first used inside one branch: outside values of the branch too."""

    def __init__(self):
        super().__init__()
        with self.name_scope():
            self.left = gluon.nn.Dense(3, in_units=2)
            self.right = gluon.nn.Dense(3, in_units=2)

    def hybrid_forward(self, F, x):
        return F.contrib.cond(x.sum() > 0, lambda: F.sqrt(self.left(x)), lambda: self.right(x))


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_parameters_of_the_untaken_branch_get_zero_gradient_and_match_eager(sign):
    grads = []
    rng = np.random.default_rng(5)
    weights = {"left": rng.uniform(0, 1, (3, 2)), "right": rng.uniform(-1, 1, (3, 2))}
    for hybrid in (False, True):
        block = DenseInBranch()
        block.initialize()
        for side in ("left", "right"):
            getattr(block, side).weight.set_data(nd.array(weights[side]))
        # sqrt of negatives (NaN) in the left branch exactly when it is not taken
        block.left.bias.set_data(nd.array([5.0, 5.0, 5.0]) * sign)
        if hybrid:
            block.hybridize()
        x = nd.array([[0.3, 0.4]]) * sign
        with autograd.record():
            y = block(x)
        y.backward()
        grads.append({f"{side}.{kind}": getattr(getattr(block, side), kind).grad().asnumpy()
                      for side in ("left", "right") for kind in ("weight", "bias")})
    eager, traced = grads
    for name in eager:
        np.testing.assert_allclose(traced[name], eager[name], rtol=1e-6, err_msg=name)
        assert np.all(np.isfinite(traced[name])), name
    untaken = "right" if sign > 0 else "left"
    assert all(np.all(g == 0) for name, g in traced.items() if name.startswith(untaken))
    assert not all(np.all(g == 0) for name, g in traced.items() if not name.startswith(untaken))


def test_cond_branches_of_different_shapes_are_refused():
    def bad(F, x):
        return F.contrib.cond(x.sum() > 0, lambda: x, lambda: x.sum())
    with pytest.raises(Exception, match="same shape"):
        _run(bad, [np.array([1.0, 2.0])], hybrid=True)


def test_cond_on_hand_built_symbols_evaluates_the_taken_branch():
    x = mx.sym.var("x", shape=(2,))
    y = mx.sym.contrib.cond(x.sum() > 0, lambda: x * 10, lambda: [x * -1][0])
    assert y.eval(x=nd.array([1, 2]))[0].asnumpy().tolist() == [10.0, 20.0]
    assert y.eval(x=nd.array([-1, -2]))[0].asnumpy().tolist() == [1.0, 2.0]


# -- while_loop ------------------------------------------------------------------------------------

def _damped(F, x, w):
    """x <- x * w - sin(x), while the sum stays below 3, at most 5 steps; outputs each x."""
    def cond(i, s):
        return s.sum() < 3

    def func(i, s):
        nxt = s * w - F.sin(s)
        return nxt, [i + 1, nxt]
    outs, (i, s) = F.contrib.while_loop(cond, func, [F.zeros_like(x.sum()), x], max_iterations=5)
    return outs, i, s


@pytest.mark.parametrize("w0", [1.5, 2.5, -0.5])
def test_while_loop_traced_matches_eager_and_finite_differences(w0):
    x, w = np.array([0.4, 0.9]), np.array([w0, 1.2])
    head = np.arange(10, dtype=np.float64).reshape(5, 2) / 7 - 0.5
    (outs, i, s), grads = _both_ways_agree(_damped, [x, w], head)
    assert outs.shape == (5, 2)
    steps = int(i[0])
    assert np.all(outs[steps:] == 0)
    for g, fd in zip(grads, _finite_differences(_damped, [x, w], head)):
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)


def test_while_loop_stops_at_max_iterations():
    def forever(F, x):
        outs, s = F.contrib.while_loop(lambda s: s.sum() > -1, lambda s: (s, s + 1), x, max_iterations=3)
        return outs, s
    (outs, s), _ = _both_ways_agree(forever, [np.array([0.0])])
    assert outs.ravel().tolist() == [0.0, 1.0, 2.0] and s.tolist() == [3.0]


def test_a_while_loop_never_entered_keeps_its_variables():
    def never(F, x):
        outs, s = F.contrib.while_loop(lambda s: s.sum() > 10, lambda s: (s * 2, s + 1), [x], max_iterations=4)
        return [outs, s[0]]
    (outs, s), _ = _run(never, [np.array([1.0, 2.0])], hybrid=True)
    assert outs.shape == (4, 2) and np.all(outs == 0) and s.tolist() == [1.0, 2.0]
    eager_outs, eager_vars = mx.nd.contrib.while_loop(lambda s: s.sum() > 10, lambda s: (s * 2, s + 1),
                                                      [nd.array([1.0, 2.0])], max_iterations=4)
    assert eager_outs == [] and eager_vars[0].asnumpy().tolist() == [1.0, 2.0]


def test_while_loop_needs_max_iterations():
    with pytest.raises(GraphcError, match="max_iterations"):
        nd.contrib.while_loop(lambda s: s < 1, lambda s: (s, s + 1), nd.zeros((1,)))


# -- foreach ---------------------------------------------------------------------------------------

def _two_stream_rnn(F, a, b, h):
    """foreach over a list of data with nested states, a cond inside the body."""
    def body(xs, states):
        (h_prev, (count,)) = states
        pre = F.tanh(xs[0] + xs[1] * h_prev)
        h_new = F.contrib.cond(pre.sum() > 0, lambda: pre * 2, lambda: pre - 1)
        return [h_new, h_new * h_new], [h_new, [count + 1]]
    (o1, o2), (h_last, (count,)) = F.contrib.foreach(body, [a, b], [h, [F.zeros_like(h)]])
    return o1, o2, h_last, count


def test_foreach_over_a_list_with_nested_states_agrees_both_ways_and_with_finite_differences():
    rng = np.random.default_rng(0)
    a, b, h = rng.uniform(-1, 1, (4, 3)), rng.uniform(-1, 1, (4, 3)), rng.uniform(-1, 1, (3,))
    head = rng.uniform(-1, 1, (4, 3))
    (o1, o2, h_last, count), grads = _both_ways_agree(_two_stream_rnn, [a, b, h], head)
    assert o1.shape == (4, 3) and o2.shape == (4, 3) and count.tolist() == [4.0, 4.0, 4.0]
    np.testing.assert_allclose(o2, o1 * o1)
    np.testing.assert_allclose(h_last, o1[-1])
    for g, fd in zip(grads, _finite_differences(_two_stream_rnn, [a, b, h], head)):
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)


def test_foreach_over_a_symbol_of_unknown_length_names_the_problem():
    with pytest.raises(GraphcError, match="shape"):
        mx.sym.contrib.foreach(lambda x, s: (x, s), mx.sym.var("data"), [mx.sym.var("s")])


# -- F.random inside hybrid_forward ----------------------------------------------------------------

# MXNet 1.9.1's sym.random functions (dir(mxnet.symbol.random), classes and modules left out)
MXNET_SYM_RANDOM = ["exponential", "exponential_like", "gamma", "gamma_like", "generalized_negative_binomial",
                    "generalized_negative_binomial_like", "multinomial", "negative_binomial",
                    "negative_binomial_like", "normal", "normal_like", "poisson", "poisson_like", "randint", "randn",
                    "shuffle", "uniform", "uniform_like"]


def test_every_mxnet_random_function_exists_under_sym_and_nd():
    for name in MXNET_SYM_RANDOM:
        assert callable(getattr(mx.sym.random, name)), name
        assert callable(getattr(nd.random, name)), name


class Noisy(gluon.HybridBlock):
    def hybrid_forward(self, F, x):
        r = F.random
        return (x + r.uniform(shape=(2, 3)) + r.normal(shape=(2, 3)) + r.randn(2, 3) + r.exponential(shape=(2, 3))
                + r.gamma(shape=(2, 3)) + r.poisson(shape=(2, 3)) + F.cast(r.randint(0, 5, shape=(2, 3)), "float32")
                + r.uniform_like(x) + r.normal_like(x) + r.shuffle(x))


def test_random_functions_in_a_hybridized_block_draw_fresh_samples_seeded_by_mx_random_seed():
    block = Noisy()
    block.hybridize()
    x = nd.ones((2, 3))
    mx.random.seed(7)
    first, second = block(x).asnumpy(), block(x).asnumpy()
    mx.random.seed(7)
    again = block(x).asnumpy()
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(first, again)


def test_a_traced_loop_over_array_loop_variables_names_the_mix_up():
    class Mixed(gluon.HybridBlock):
        def hybrid_forward(self, F, x):
            outs, s = F.contrib.while_loop(lambda s: (s + x).sum() < 5, lambda s: (s, s + 1), nd.zeros((2,)),
                                           max_iterations=3)
            return s
    block = Mixed()
    block.hybridize()
    with pytest.raises(GraphcError, match="symbolic loop variables"):
        block(nd.ones((2,)))
