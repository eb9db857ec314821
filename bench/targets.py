"""Issue 14's performance targets, one verdict line per workload, so that BENCHMARKS.md itself
says which target graphc meets.

A target is a ratio graphc must reach (speed against a peer's, a fraction of the lower bound, a
time limit). The verdict uses the samples' spread, as the win/loss verdicts do: "met" when even
graphc's worst sample against the reference's best clears the target, "not met" when even its
best does not, and otherwise "not decided" (the spreads straddle the target; re-run quieter).
"""
from __future__ import annotations

import bounds
from report_fair import HIGHER_IS_BETTER, speeds

W1_BYTES = 8.0 * (1 << 24)


def judge(lo: float, hi: float, target: float) -> str:
    if lo >= target:
        return "met"
    if hi < target:
        return "not met"
    return "not decided (the spread straddles the target)"


def _line(what: str, figure: str, verdict: str) -> str:
    return f"**Target (issue 14)**: {what}: {figure} → **{verdict}**."


def _ratio(g: dict, ref: dict) -> tuple[float, float, float]:
    """graphc's speed over the reference's: (median ratio, worst case, best case)."""
    gs, rs = speeds(g), speeds(ref)
    return _speed(g) / _speed(ref), min(gs) / max(rs), max(gs) / min(rs)


def _speed(r: dict) -> float:
    """The record's median as a speed (as run.py's tables rank them)."""
    return r["median"] if r["unit"] in HIGHER_IS_BETTER else 1.0 / r["median"]


def _best(recs: list, pick) -> dict | None:
    c = [r for r in recs if "median" in r and r["system"] != "graphc" and pick(r)]
    return max(c, key=_speed) if c else None


def _name(r: dict) -> str:
    v = r.get("variant", "")
    return f"{r['system']} {v}".strip()


def _vs_peer(wl, g, ref, target, what) -> str:
    if ref is None:
        return _line(what, "no reference measurement in this run", "not decided")
    med, lo, hi = _ratio(g, ref)
    fig = (f"graphc {med:.2f}× {_name(ref)} (range {lo:.2f}–{hi:.2f}; target ≥ {target:.2f}×)")
    return _line(what, fig, judge(lo, hi, target))


def _vs_bound(wl, g, results, frac, what) -> str:
    lim, _ = bounds.limits(results)
    t_peak, _ = bounds.bound_seconds(wl, lim)
    if t_peak is None:
        return _line(what, "no lower bound (no W0 figures)", "not decided")
    # the fraction of the bound each sample reaches: bound time / sample's time
    fr = [t_peak / bounds.seconds_of(dict(g, median=x)) for x in (g.get("samples") or [g["median"]])]
    med = t_peak / bounds.seconds_of(g)
    return _line(what, f"graphc {med:.2f} of the bound (range {min(fr):.2f}–{max(fr):.2f}; "
                 f"target ≥ {frac:.2f})", judge(min(fr), max(fr), frac))


def lines(wl: str, recs: list, results: list) -> list:
    """The target line(s) of `wl` for the report, [] for workloads issue 14 sets no target."""
    ok = [r for r in recs if "median" in r]
    gs = [r for r in ok if r["system"] == "graphc"]
    fn = TARGETS.get(wl)
    if fn is None:
        return []
    if not gs:
        return [_line(DESCRIPTION[wl], "graphc has no measurement", "not decided")]
    return fn(gs, ok, results)


def _w1(gs, ok, results):
    g = gs[0]
    return [_vs_peer("W1", g, _best(ok, lambda r: True), 2.0, DESCRIPTION["W1"])]


def _w1b(gs, ok, results):
    g = gs[0]
    triad = next((r for r in results if r["system"] == "triad" and "median" in r), None)
    if triad is None:       # an --only run: the cached W0 figure, without its spread
        lim, src = bounds.limits(results)
        if not lim.get("triad"):
            return [_line(DESCRIPTION["W1b"], "no triad figure (run W0)", "not decided")]
        triad = {"median": lim["triad"], "source": src}
    gb = [W1_BYTES / (x * 1e-3) / 1e9 for x in (g.get("samples") or [g["median"]])]
    t_lo, t_hi = (triad.get("spread") or [triad["median"]] * 2)
    med = g["gbps"] / triad["median"]
    src = f" ({triad['source']})" if triad.get("source") else ""
    return [_line(DESCRIPTION["W1b"], f"graphc {med:.2f} of the triad{src} (range "
                  f"{min(gb) / t_hi:.2f}–{max(gb) / t_lo:.2f}; target ≥ 0.90)",
                  judge(min(gb) / t_hi, max(gb) / t_lo, 0.9))]


def _w2(gs, ok, results):
    return [_vs_peer("W2", gs[0], _best(ok, lambda r: r["system"] == "onnxruntime"), 1.0,
                     DESCRIPTION["W2"])]


def _w3(gs, ok, results):
    return [_vs_bound("W3", gs[0], results, 0.8, DESCRIPTION["W3"])]


def _w4(gs, ok, results):
    return [_vs_peer("W4", gs[0], _best(ok, lambda r: r["system"] == "onnxruntime"), 1 / 0.75,
                     DESCRIPTION["W4"])]


def _w5(gs, ok, results):
    return [_vs_bound("W5", gs[0], results, 0.7, DESCRIPTION["W5"])]


def _w5b(gs, ok, results):
    g = gs[0]
    r = g.get("ratio_vs_w5")
    if r is None:
        return [_line(DESCRIPTION["W5b"], "no W5/W5b pairs recorded", "not decided")]
    lo, hi = g.get("ratio_vs_w5_spread") or (r, r)
    return [_line(DESCRIPTION["W5b"], f"W5b/W5 speed {r:.2f} (per-pair range {lo:.2f}–{hi:.2f}; "
                  "target ≥ 0.90)", judge(lo, hi, 0.9))]


def _w6(gs, ok, results):
    out = []
    for variant, limit in (("hybrid-cold", 0.5), ("hybrid-warm", 0.1)):
        g = next((r for r in gs if r.get("variant") == variant), None)
        what = f"W6 {variant.split('-')[1]} first call at most {limit} s"
        if g is None:
            out.append(_line(what, "not measured", "not decided"))
            continue
        s = g.get("samples") or [g["median"]]
        # a time limit: met when every fresh process stayed under it (ratio limit / time >= 1)
        out.append(_line(what, f"graphc {g['median']:.2f} s (range {min(s):.2f}–{max(s):.2f})",
                         judge(limit / max(s), limit / min(s), 1.0)))
    return out


def _w7(gs, ok, results):
    ref = _best(ok, lambda r: r["system"] == "torch"
                and r.get("base_variant", r.get("variant")) == "eager")
    return [_vs_peer("W7", gs[0], ref, 1.0, DESCRIPTION["W7"])]


def _compiled_torch(r):
    return r["system"] == "torch" and str(r.get("base_variant", r.get("variant"))).startswith(
        "compile")


def _w8a(gs, ok, results):
    ref = _best(ok, lambda r: r["system"] in ("onnxruntime", "jax") or _compiled_torch(r))
    return [_vs_peer("W8a", gs[0], ref, 1.0, DESCRIPTION["W8a"])]


def _w8b(gs, ok, results):
    ref = _best(ok, lambda r: r["system"] == "jax" or _compiled_torch(r))
    return [_vs_peer("W8b", gs[0], ref, 1.0, DESCRIPTION["W8b"])]


def _w9(gs, ok, results):
    g = gs[0]
    out = [_vs_peer("W9", g, _best(ok, lambda r: True), 1.0,
                    "W9 steps/s at least the best peer")]
    mx = [r for r in ok if r["system"] == "mxnet" and isinstance(r.get("peak_rss_mib"),
                                                                 (int, float))]
    rss = g.get("peak_rss_mib")
    if mx and isinstance(rss, (int, float)):
        ref = min(r["peak_rss_mib"] for r in mx)
        out.append(_line("W9 peak memory at most MXNet's", f"graphc {rss:.0f} MiB, MXNet "
                         f"{ref:.0f} MiB", "met" if rss <= ref else "not met"))
    else:
        out.append(_line("W9 peak memory at most MXNet's", "no MXNet peak RSS in this run",
                         "not decided"))
    first = g.get("setup_s")
    if isinstance(first, (int, float)):
        how = g.get("first_step_cache", "kernel cache as found")
        out.append(_line("W9 first training step (trace + compile) at most 3 s cold",
                         f"graphc {first:.1f} s ({how})",
                         ("met" if first <= 3.0 else "not met")
                         if how.startswith("cold") else "not decided (not a cold cache)"))
    return out


DESCRIPTION = {
    "W1": "W1 at least 2× the best tuned peer",
    "W1b": "W1b at least 0.9 of the STREAM triad",
    "W2": "W2 at or below onnxruntime's time",
    "W3": "W3 at least 80% of the lower bound",
    "W4": "W4 at most 0.75× onnxruntime's time (speed ≥ 1.33×)",
    "W5": "W5 at least 70% of the lower bound",
    "W5b": "W5b within 10% of W5 (graphc, timed in alternating blocks in one process)",
    "W6": "W6 cold first call at most 0.5 s, warm at most 0.1 s",
    "W7": "W7 at least PyTorch eager",
    "W8a": "W8a at least the best of onnxruntime, torch.compile and JAX",
    "W8b": "W8b at least the best of torch.compile and JAX",
    "W9": "W9 at least the best peer; peak memory at most MXNet's; first step at most 3 s cold",
}
TARGETS = {"W1": _w1, "W1b": _w1b, "W2": _w2, "W3": _w3, "W4": _w4, "W5": _w5, "W5b": _w5b,
           "W6": _w6, "W7": _w7, "W8a": _w8a, "W8b": _w8b, "W9": _w9}
