"""Learning-rate schedules: values at given update counts, warmup, and argument checks."""
import math

import pytest

from graphc.gluon import lr_scheduler as lrs


def test_factor_scheduler_steps_and_floors():
    s = lrs.FactorScheduler(step=3, factor=0.1, stop_factor_lr=1e-3, base_lr=1.0)
    assert [s(n) for n in (0, 3, 4, 7, 10, 100)] == pytest.approx([1.0, 1.0, 0.1, 0.01, 1e-3, 1e-3])


def test_factor_scheduler_with_linear_warmup():
    s = lrs.FactorScheduler(step=10, factor=0.5, base_lr=1.0, warmup_steps=4, warmup_begin_lr=0.2)
    assert [s(n) for n in range(4)] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert s(4) == 1.0 and s(11) == 0.5


def test_constant_warmup():
    s = lrs.CosineScheduler(max_update=10, base_lr=1.0, warmup_steps=2, warmup_begin_lr=0.1,
                            warmup_mode="constant")
    assert s(0) == s(1) == 0.1


def test_multifactor_scheduler():
    s = lrs.MultiFactorScheduler(step=[2, 5], factor=0.5, base_lr=1.0)
    assert [s(n) for n in range(8)] == pytest.approx([1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25])
    with pytest.raises(ValueError, match="increasing"):
        lrs.MultiFactorScheduler(step=[5, 2])


def test_poly_scheduler():
    s = lrs.PolyScheduler(max_update=10, base_lr=1.0, pwr=2, final_lr=0.1)
    for n in (0, 3, 10):
        assert s(n) == pytest.approx(0.1 + 0.9 * (1 - n / 10) ** 2)
    assert s(20) == pytest.approx(0.1)


def test_poly_scheduler_with_warmup_counts_from_warmup_end():
    s = lrs.PolyScheduler(max_update=12, base_lr=1.0, pwr=1, warmup_steps=2)
    assert s(1) == pytest.approx(0.5)
    assert s(7) == pytest.approx(1 - 5 / 10)


def test_cosine_scheduler():
    s = lrs.CosineScheduler(max_update=8, base_lr=2.0, final_lr=0.0)
    for n in (0, 2, 4, 8):
        assert s(n) == pytest.approx((1 + math.cos(math.pi * n / 8)) / 2 * 2.0)
    assert s(100) == pytest.approx(0.0)


def test_argument_checks():
    with pytest.raises(ValueError):
        lrs.FactorScheduler(step=0)
    with pytest.raises(ValueError):
        lrs.FactorScheduler(step=1, factor=2)
    with pytest.raises(ValueError):
        lrs.CosineScheduler(max_update=0)
    with pytest.raises(ValueError, match="warmup_begin_lr"):
        lrs.FactorScheduler(step=1, base_lr=0.1, warmup_begin_lr=0.5)
    with pytest.raises(ValueError):
        lrs.FactorScheduler(step=1, warmup_mode="exp")
