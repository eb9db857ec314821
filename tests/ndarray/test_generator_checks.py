"""graphc.test_utils' statistical checks of random generators (gen_buckets_probs_with_ppf,
chi_square_check, verify_generator, mean_check, var_check), which MXNet's test_random.py
uses: they must pass graphc's samplers and fail a generator of the wrong distribution."""
import numpy as np
import pytest
import scipy.stats as ss

import graphc as mx
from graphc.test_utils import (chi_square_check, gen_buckets_probs_with_ppf, mean_check, var_check,
                               verify_generator)


def test_buckets_have_equal_probability():
    buckets, probs = gen_buckets_probs_with_ppf(lambda q: ss.uniform.ppf(q, loc=2, scale=4), 4)
    np.testing.assert_allclose(buckets, [(2, 3), (3, 4), (4, 5), (5, 6)])
    assert probs == [0.25] * 4


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_samplers_pass_and_a_shifted_one_fails(dtype):
    buckets, probs = gen_buckets_probs_with_ppf(lambda q: ss.norm.ppf(q, 1.0, 2.0), 5)
    verify_generator(lambda n: mx.nd.random.normal(1.0, 2.0, shape=n, dtype=dtype).asnumpy(), buckets, probs,
                     nsamples=200000)
    with pytest.raises(AssertionError, match="chi-square tests passed"):
        verify_generator(lambda n: mx.nd.random.normal(1.2, 2.0, shape=n, dtype=dtype).asnumpy(), buckets, probs,
                         nsamples=200000)


def test_discrete_buckets():
    lam = 3.0
    values = list(range(40))
    probs = [ss.poisson.pmf(v, lam) for v in values]
    p, observed, expected = chi_square_check(lambda n: mx.nd.random.poisson(lam, shape=n).asnumpy(), values, probs,
                                             nsamples=100000)
    assert observed.sum() == 100000 and abs(expected.sum() - 100000) < 1e-6
    assert p > 1e-4


def test_samples_outside_the_buckets_are_reported():
    with pytest.raises(AssertionError, match="outside the buckets"):
        chi_square_check(lambda n: np.full(n, 10.0), [(0.0, 1.0), (1.0, 2.0)], [0.5, 0.5], nsamples=100)


def test_mean_and_variance_checks():
    rng = np.random.default_rng(0)
    assert mean_check(lambda n: rng.normal(0.5, 1.0, n), 0.5, 1.0, nsamples=200000)
    assert not mean_check(lambda n: rng.normal(0.6, 1.0, n), 0.5, 1.0, nsamples=200000)
    assert var_check(lambda n: rng.normal(0.0, 2.0, n), 2.0, nsamples=200000)
    assert not var_check(lambda n: rng.normal(0.0, 2.5, n), 2.0, nsamples=200000)
