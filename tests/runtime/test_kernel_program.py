"""Kernels built directly in kernel IR (runtime/kernel_program.py): MultiStore's outputs are all
computed from the values loaded before any store, so in-place outputs read the old values; the
program binds arrays by slot and byte offset and rejects arrays that do not fit."""
import numpy as np
import pytest

from graphc.ops import scalar as S
from graphc.runtime.kernel_ir import Buf, Index, Kernel, Load, Loop
from graphc.runtime.kernel_program import KernelProgram, MultiStore
from graphc.runtime.lower import PARALLEL_WORK

F = "float32"


def _rotate(n, parallel):
    """(a, b) <- (a + s*b, b - s*a): each output reads both old values, so storing one before
    computing the other would give a different answer."""
    at = Index((("i", 1),))
    a, b, s = S.arg(0, F), S.arg(1, F), S.arg(2, F)
    stmt = MultiStore(("a", "b"), at, (a + s * b, b - s * a),
                      (Load("a", at), Load("b", at), Load("s", Index((), 0))))
    return Kernel("rotate", [Buf("a", F, n), Buf("b", F, n), Buf("s", F, 1)],
                  [Loop("i", n, [stmt], parallel=parallel)], work=4 * n)


@pytest.mark.parametrize("n,parallel", [(7, False), (PARALLEL_WORK + 13, True)])
def test_multistore_outputs_read_the_old_values_in_place(n, parallel):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=n).astype(np.float32), rng.normal(size=n).astype(np.float32)
    s = np.array([0.25], np.float32)
    want_a, want_b = a + s[0] * b, b - s[0] * a
    prog = KernelProgram("rotate_test", [(_rotate(n, parallel), [0, 1, 2])], 3)
    prog([a, b, s])
    np.testing.assert_allclose(a, want_a, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(b, want_b, rtol=1e-6, atol=1e-7)
    prog([a, b, s])                                  # the same arrays again: addresses kept
    np.testing.assert_allclose(a, want_a + s[0] * want_b, rtol=1e-6, atol=1e-6)


def test_byte_offsets_bind_part_of_an_array():
    """Two calls of one kernel on the two halves of a vector, each with its own scale."""
    k = _rotate(4, False)
    a, b = np.arange(8, dtype=np.float32), np.ones(8, np.float32)
    s = np.array([1.0, 2.0], np.float32)
    prog = KernelProgram("halves_test", [(k, [(0, 0), (1, 0), (2, 0)]), (k, [(0, 16), (1, 16), (2, 4)])], 3)
    a0, b0 = a.copy(), b.copy()
    prog([a, b, s])
    sc = np.repeat(s, 4)
    np.testing.assert_allclose(a, a0 + sc * b0)
    np.testing.assert_allclose(b, b0 - sc * a0)


def test_an_array_too_small_or_of_another_dtype_is_refused():
    prog = KernelProgram("check_test", [(_rotate(5, False), [0, 1, 2])], 3)
    s = np.ones(1, np.float32)
    with pytest.raises(ValueError, match=r"array 1 must be a C-contiguous writeable float32 array of at "
                                         r"least 5 elements, got float32\[4\]"):
        prog([np.ones(5, np.float32), np.ones(4, np.float32), s])
    with pytest.raises(ValueError, match=r"array 0 .* got float64\[5\]"):
        prog([np.ones(5), np.ones(5, np.float32), s])
    ro = np.ones(5, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"array 0 must be a C-contiguous writeable .* \(read-only\)"):
        prog([ro, np.ones(5, np.float32), s])
    prog([np.ones(5, np.float32), np.ones(5, np.float32), np.asarray(np.broadcast_to(s, (1,)))])  # s: read only
    with pytest.raises(ValueError, match="expects 3 arrays, got 2"):
        prog([np.ones(5, np.float32), s])


def test_text_names_every_output():
    text = str(_rotate(3, False))
    assert "a[i] = " in text and "b[i] = " in text and "one set of loads" in text
