"""Statistical checks of random generators (MXNet's test_utils: gen_buckets_probs_with_ppf,
chi_square_check, verify_generator, mean_check, var_check).

A sampler cannot be compared with a fixed expected array, only with its distribution: the
samples are binned and a chi-square test asks whether the bin counts fit the probabilities; a
test repeated `nrepeat` times passes when enough repeats fit (one unlucky draw is not a bug).
"""
from __future__ import annotations

import numpy as np

__all__ = ["gen_buckets_probs_with_ppf", "chi_square_check", "verify_generator", "mean_check", "var_check"]


def gen_buckets_probs_with_ppf(ppf, nbuckets):
    """`nbuckets` buckets of equal probability from a quantile function `ppf` (inverse cdf):
    [(ppf(0), ppf(1/n)), (ppf(1/n), ppf(2/n)), ...] and the probabilities [1/n] * n."""
    cuts = [ppf(i / float(nbuckets)) for i in range(nbuckets + 1)]
    buckets = [(cuts[i], cuts[i + 1]) for i in range(nbuckets)]
    return buckets, [1.0 / nbuckets] * nbuckets


def _bucket_counts(samples, buckets):
    """Counts per bucket: (low, high) ranges for a continuous generator, else the discrete
    values themselves; every sample must fall in a bucket."""
    samples = np.asarray(samples).reshape(-1)
    if isinstance(buckets[0], (list, tuple)):
        counts = [int(np.sum((samples > lo) & (samples <= hi))) for lo, hi in buckets]
        # the lowest bucket's lower edge is inclusive (ppf(0) of a bounded distribution)
        counts[0] += int(np.sum(samples == buckets[0][0]))
    else:
        counts = [int(np.sum(samples == v)) for v in buckets]
    if sum(counts) != samples.size:
        raise AssertionError(f"chi_square_check: {samples.size - sum(counts)} of {samples.size} samples fall "
                             f"outside the buckets {buckets}")
    return np.array(counts, dtype=np.float64)


def chi_square_check(generator, buckets, probs, nsamples=1000000):
    """(p value, observed counts, expected counts) of a chi-square test of generator(nsamples)
    against `probs` over `buckets` ((low, high] ranges, or the values of a discrete generator)."""
    import scipy.stats as ss
    if not isinstance(buckets, list) or len(buckets) != len(probs):
        raise ValueError(f"chi_square_check: buckets must be a list with one entry per probability, got "
                         f"{len(buckets) if isinstance(buckets, list) else type(buckets).__name__} buckets and "
                         f"{len(probs)} probabilities")
    observed = _bucket_counts(generator(nsamples), buckets)
    expected = np.asarray(probs, dtype=np.float64) * nsamples
    expected *= observed.sum() / expected.sum()       # (probabilities that round to not quite 1)
    _, p = ss.chisquare(f_obs=observed, f_exp=expected)
    return p, observed, expected


def verify_generator(generator, buckets, probs, nsamples=1000000, nrepeat=5, success_rate=0.2, alpha=0.05):
    """Repeat chi_square_check `nrepeat` times; AssertionError unless at least `success_rate`
    of the repeats have p > alpha. Returns each repeat's (p, observed, expected)."""
    results = [chi_square_check(generator, buckets, probs, nsamples) for _ in range(nrepeat)]
    passed = sum(1 for p, _, _ in results if p > alpha)
    if passed < success_rate * nrepeat:
        worst = min(results, key=lambda r: r[0])
        raise AssertionError(f"verify_generator: {passed} of {nrepeat} chi-square tests passed (p > {alpha}), "
                             f"needed {success_rate * nrepeat:g}; worst p={worst[0]:.3g}, observed "
                             f"{worst[1].tolist()}, expected {worst[2].tolist()}")
    return results


def mean_check(generator, mu, sigma, nsamples=1000000):
    """Whether the sample mean of generator(nsamples) is within 3 standard errors of mu."""
    samples = np.asarray(generator(nsamples), dtype=np.float64)
    bound = 3.0 * sigma / np.sqrt(nsamples)
    return bool(mu - bound < samples.mean() < mu + bound)


def var_check(generator, sigma, nsamples=1000000):
    """Whether the sample variance of generator(nsamples) is within 3 standard errors of sigma^2."""
    samples = np.asarray(generator(nsamples), dtype=np.float64)
    var = sigma ** 2
    bound = 3.0 * np.sqrt(2.0 * sigma ** 4 / (nsamples - 1))
    return bool(var - bound < samples.var(ddof=1) < var + bound)
