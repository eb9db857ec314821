"""MXNet's Python-level split_v2 and histogram, written once over an operator namespace so
that graphc.nd and graphc.sym (as MXNet's nd and sym) both have them: they turn MXNet's
friendly arguments (an int or a tuple of cut points; bins as a count or an array of edges)
into the _split_v2 / _histogram operators' attributes."""
from __future__ import annotations

import numbers


def functions(namespace, is_array) -> dict:
    def split_v2(ary, indices_or_sections, axis=0, squeeze_axis=False):
        """Pieces of `ary` along `axis`: `indices_or_sections` equal parts, or cut at the given indices."""
        if isinstance(indices_or_sections, numbers.Integral):
            return namespace._split_v2(ary, indices=(), axis=axis, squeeze_axis=squeeze_axis,
                                       sections=int(indices_or_sections))
        if isinstance(indices_or_sections, (tuple, list)):
            return namespace._split_v2(ary, indices=(0,) + tuple(indices_or_sections), axis=axis,
                                       squeeze_axis=squeeze_axis, sections=0)
        raise ValueError("split_v2: indices_or_sections must be an int or a tuple of ints, got "
                         f"{type(indices_or_sections).__name__}")

    def histogram(a, bins=10, range=None):  # noqa: A002  (MXNet's parameter name)
        """(counts, bin edges) of `a`: `bins` equal bins over `range` (default: a's min to max),
        or the edges given as an array."""
        if is_array(bins):
            return namespace._histogram(a, bins)
        if not isinstance(bins, numbers.Integral):
            raise ValueError(f"histogram: bins must be an int or an array of edges, got {type(bins).__name__}")
        return namespace._histogram(a, bin_cnt=int(bins), range=range)

    return {"split_v2": split_v2, "histogram": histogram}
