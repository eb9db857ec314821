"""JAX on the CPU: jax.jit for W1/W1b/W2 and W8a's encoder (jax_w8a.py); the whole train step
jitted for W3, W8b (jax_w8b.py) and W9 (jax_w9.py); W7 op by op (no jit)."""
import os

import _common as C  # first: pins thread counts

# XLA's default flags (issue 14: "intra_op_parallelism_threads" is no XLA flag and was
# ignored, and --xla_cpu_multi_thread_eigen=false was never shown faster); XLA sizes its pool
# to the cores this process may use (2 on the benchmark machine).
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

SYSTEM = "jax"


def f_w1(x):
    return jnp.tanh(x * 0.5 + 1.0) * jax.nn.sigmoid(x) + 0.1 * x


def f_w1b(x):
    return jax.nn.relu(x * 0.5 + 1.0) * x - 0.25


def params():
    ws, bs = C.mlp_weights()
    return [(jnp.asarray(w), jnp.asarray(b)) for w, b in zip(ws, bs)]


def mlp(p, x):
    h = x
    for i, (w, b) in enumerate(p):
        h = h @ w + b
        if i < len(p) - 1:
            h = jax.nn.relu(h)
    return h


def loss_fn(p, x, y):
    logp = jax.nn.log_softmax(mlp(p, x))
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def elementwise(wl, quick):
    def body():
        xn = C.w1_input()
        x = jnp.asarray(xn)
        t0 = time.perf_counter()
        fn = jax.jit(f_w1 if wl == "W1" else f_w1b)
        y = np.asarray(fn(x).block_until_ready())
        setup = time.perf_counter() - t0
        ref = (C.w1_reference if wl == "W1" else C.w1b_reference)(xn)
        warm, reps = C.reps(wl, quick)
        samples = C.time_calls(lambda: fn(x).block_until_ready(), warm, reps)
        return C.record(SYSTEM, "jit", wl, samples, check=C.check_value(y),
                        max_abs_err=float(np.max(np.abs(y - ref))), setup_s=setup)
    return body


def w2(quick):
    def body():
        p = params()
        x = jnp.asarray(C.mlp_inputs(1)[0])
        t0 = time.perf_counter()
        fn = jax.jit(mlp)
        out = np.asarray(fn(p, x).block_until_ready())
        setup = time.perf_counter() - t0
        warm, reps = C.reps("W2", quick)
        samples = C.time_blocks(lambda: fn(p, x).block_until_ready(), C.W2_BLOCK, warm, reps)
        return C.record(SYSTEM, "jit", "W2", samples, check=C.check_value(out), setup_s=setup)
    return body


def w3(quick):
    def body():
        xn, yn = C.mlp_inputs(C.BATCH_W3)
        x, y = jnp.asarray(xn), jnp.asarray(yn.astype(np.int32))

        @jax.jit
        def step(p, x, y):
            loss, g = jax.value_and_grad(loss_fn)(p, x, y)
            p = jax.tree_util.tree_map(lambda a, ga: a - C.LR * ga, p, g)
            return p, loss
        step = jax.jit(step, donate_argnums=0)
        state = {"p": params()}
        losses = []     # every step's loss, compared across systems in the report

        def one():
            state["p"], loss = step(state["p"], x, y)
            losses.append(float(loss))
            return loss
        t0 = time.perf_counter()
        first = float(one())
        setup = time.perf_counter() - t0
        warm, reps = C.reps("W3", quick)
        samples = C.time_blocks(one, C.W3_BLOCK, warm, reps)
        return C.record(SYSTEM, "jit", "W3", samples, first_loss=first, setup_s=setup,
                        xla_flags=os.environ.get("XLA_FLAGS", "(default)"),
                        losses=losses[:400], n_steps=len(losses))
    return body


def w7(quick):
    """Op by op: value_and_grad and the momentum update run without jax.jit, so every
    primitive is dispatched on its own (JAX's eager mode)."""
    import _w7_9 as W

    def body():
        xn, yn = C.mlp_inputs(W.W7_BATCH)
        x, y = jnp.asarray(xn), jnp.asarray(yn.astype(np.int32))
        grad_fn = jax.value_and_grad(loss_fn)
        state = {"p": params()}
        state["m"] = jax.tree_util.tree_map(jnp.zeros_like, state["p"])
        trace = W.LossTrace()

        def step():
            loss, g = grad_fn(state["p"], x, y)
            state["m"] = jax.tree_util.tree_map(lambda m, ga: W.W7_MOMENTUM * m + ga,
                                                state["m"], g)
            state["p"] = jax.tree_util.tree_map(lambda a, m: a - W.W7_LR * m,
                                                state["p"], state["m"])
            trace.add(float(loss))
        t0 = time.perf_counter()
        step()
        setup = time.perf_counter() - t0
        warm, reps = W.reps("W7", quick)
        samples = C.time_blocks(step, W.W7_BLOCK, warm, reps)
        return W.record(SYSTEM, "op-by-op", "W7", samples, setup_s=setup, weights="seeded",
                        **trace.fields())
    return body


def main():
    a = C.parse_args()
    wl = a.workload
    if wl == "W7" and C.wanted(a, "op-by-op"):
        C.run_variant(SYSTEM, "op-by-op", "W7", w7(a.quick))
        return
    if wl == "W8a" and C.wanted(a, "jit"):
        import jax_w8a
        C.run_variant(SYSTEM, "jit", "W8a", jax_w8a.w8a(SYSTEM, a.quick))
        return
    if wl == "W8b" and C.wanted(a, "jit"):
        import jax_w8b
        C.run_variant(SYSTEM, "jit", "W8b", jax_w8b.w8b(SYSTEM, a.quick))
        return
    if wl == "W9" and C.wanted(a, "jit"):
        import jax_w9
        C.run_variant(SYSTEM, "jit", "W9", jax_w9.w9(SYSTEM, a.quick))
        return
    plan = {"W1": [("jit", elementwise("W1", a.quick))],
            "W1b": [("jit", elementwise("W1b", a.quick))],
            "W2": [("jit", w2(a.quick))],
            "W3": [("jit", w3(a.quick))]}.get(wl, [])
    for variant, body in plan:
        if C.wanted(a, variant):
            C.run_variant(SYSTEM, variant, wl, body)


if __name__ == "__main__":
    main()
