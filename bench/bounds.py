"""Lower bounds per workload on the measuring machine (issue 14: "BENCHMARKS.md prints each
workload's lower bound and graphc's fraction of it").

A workload's bound is max(FLOP / FMA peak, bytes / triad): the time no implementation beats on
this machine. The SGEMM rate is shown beside it as the compute rate a real GEMM reaches. The
machine's figures come from W0 of the same run, or else from the last run that had W0 (cached
in bench/.work/limits.json, and the report says from when).
"""
from __future__ import annotations

import json
from pathlib import Path

LIMITS = Path(__file__).resolve().parent / ".work" / "limits.json"
# a --quick run's W0 figures: too rough to quote, used only while no full run has measured W0
LIMITS_QUICK = LIMITS.with_name("limits_quick.json")


def _mlp_fwd(batch, dims=(784, 512, 512, 10)):
    return 2.0 * batch * sum(a * b for a, b in zip(dims[:-1], dims[1:]))


def _mlp_step(batch, dims=(784, 512, 512, 10)):
    """forward + weight gradients (= forward) + input gradients of all but the first layer"""
    f = _mlp_fwd(batch, dims)
    return 2 * f + 2.0 * batch * sum(a * b for a, b in zip(dims[1:-1], dims[2:]))


def _encoder_layer(tokens, seq, d, ffn):
    """one encoder layer's forward FLOP: 4 projections, 2 FFN GEMMs, QK^T and AV"""
    return 2.0 * tokens * (4 * d * d + 2 * d * ffn) + 2.0 * 2 * tokens * seq * d


def _lstm_lm_step():
    tokens, e, h, v = 35 * 20, 200, 200, 10000
    fwd = 2.0 * tokens * (4 * h * (e + h) + 4 * h * (h + h) + h * v)
    return 3 * fwd


# workload -> (FLOP per unit of the table's figure, bytes moved at least, what the FLOP is)
WORK = {
    "W1": (None, 8.0 * (1 << 24), "one 4-byte read and write per element"),
    "W1b": (None, 8.0 * (1 << 24), "one 4-byte read and write per element"),
    "W2": (_mlp_fwd(1), None, "MLP forward, batch 1"),
    "W3": (_mlp_step(256), None, "forward + backward of the MLP, batch 256"),
    "W4": (3.63e9, None, "direct-convolution equivalent (1.81 G multiply-adds x 2); graphc's "
           "Winograd 3x3 convolutions execute about 2.0 GFLOP"),
    "W5": (_lstm_lm_step(), None, "3 x the forward of 700 tokens (LSTM gates + decoder)"),
    "W5b": (_lstm_lm_step(), None, "W5's; dropout adds element-wise work only"),
    "W7": (_mlp_step(64), None, "forward + backward of the MLP, batch 64"),
    "W8a": (12 * _encoder_layer(128, 128, 768, 3072), None,
            "12 layers x (projections, FFN, attention) at 128 tokens"),
    "W8b": (3 * (2 * _encoder_layer(2048, 64, 256, 1024) + 2.0 * 2048 * 256 * 10000), None,
            "3 x the forward of 2048 tokens (2 layers + decoder)"),
    "W9": (3 * 16 * 3.63e9, None, "3 x the forward of 16 images (direct convolution)"),
}


def save_limits(results: list, date: str, quick: bool) -> None:
    """Cache this run's W0 figures for later partial runs; a --quick run's go to a file of
    their own, a fallback that never replaces a full run's."""
    lim = machine_limits(results)
    if {"fma", "triad"} <= lim.keys():
        lim["date"] = date
        path = LIMITS_QUICK if quick else LIMITS
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(lim))


def machine_limits(results: list) -> dict:
    """{'fma': GFLOP/s, 'sgemm': GFLOP/s, 'triad': GB/s} from this run's W0 records."""
    out = {}
    for r in results:
        if r.get("workload") != "W0" or "median" not in r:
            continue
        if r["system"] == "fma":
            out["fma"] = r["median"]
        elif r["system"] == "triad":
            out["triad"] = r["median"]
        elif r["system"] == "numpy" and str(r.get("variant", "")).startswith("sgemm"):
            out["sgemm"] = max(out.get("sgemm", 0.0), r["median"])
    return _consistent(out)


def _consistent(lim: dict) -> dict:
    """A disturbed FMA measurement below the SGEMM rate: the peak is at least what a GEMM
    reached."""
    if "fma" in lim and lim.get("sgemm", 0.0) > lim["fma"]:
        lim = dict(lim, fma=lim["sgemm"])
    return lim


def limits(results: list) -> tuple[dict, str]:
    lim = machine_limits(results)
    if {"fma", "triad"} <= lim.keys():
        return lim, "this run's W0"
    for path, how in ((LIMITS, ""), (LIMITS_QUICK, ", a --quick run")):
        try:
            old = _consistent(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
        return old, f"W0 of {old.get('date', 'an earlier run')}{how}"
    return lim, "this run's W0"


def bound_seconds(wl: str, lim: dict) -> tuple[float | None, float | None]:
    """(bound at the FMA peak / triad, bound at the SGEMM rate / triad), seconds per unit."""
    flop, nbytes, _ = WORK.get(wl, (None, None, ""))
    t_mem = nbytes / (lim["triad"] * 1e9) if nbytes and lim.get("triad") else 0.0
    t_peak = flop / (lim["fma"] * 1e9) if flop and lim.get("fma") else 0.0
    t_gemm = flop / (lim["sgemm"] * 1e9) if flop and lim.get("sgemm") else 0.0
    a = max(t_mem, t_peak) or None
    b = max(t_mem, t_gemm) or None
    return a, b


def seconds_of(rec: dict) -> float:
    """The record's median as seconds per call or step."""
    unit, m = rec["unit"], rec["median"]
    return {"ms": m / 1e3, "us": m / 1e6, "s": m, "steps/s": 1.0 / m}.get(unit, float("nan"))


def lines(wl: str, results: list, graphc_recs: list) -> list:
    """The report's lower-bound line for `wl` and graphc's fraction of it."""
    if wl not in WORK:
        return []
    lim, src = limits(results)
    t_peak, t_gemm = bound_seconds(wl, lim)
    if t_peak is None:
        return [f"Lower bound: not computed (no W0 machine figures yet; run W0)."]
    flop, nbytes, what = WORK[wl]
    parts = []
    if flop:
        parts.append(f"{flop / 1e9:.3g} GFLOP ({what}) at the FMA peak {lim['fma']:.0f} GFLOP/s")
    if nbytes:
        parts.append(f"{nbytes / 2**20:.0f} MiB ({what}) at the triad {lim['triad']:.1f} GB/s")
    txt = f"Lower bound on this machine ({src}): {_fmt_s(t_peak)} per call/step from " \
          + "; ".join(parts)
    if flop and t_gemm and lim.get("sgemm") and t_gemm != t_peak:
        txt += f" ({_fmt_s(t_gemm)} at the measured SGEMM rate {lim['sgemm']:.0f} GFLOP/s)"
    txt += "."
    for g in graphc_recs:
        s = seconds_of(g)
        frac = t_peak / s
        which = f" ({g['variant']})" if len(graphc_recs) > 1 else ""
        txt += f" graphc{which} reaches **{frac:.2f}** of it"
        if flop and t_gemm and t_gemm != t_peak:
            txt += f" ({t_gemm / s:.2f} of the SGEMM-rate bound)"
        txt += "."
    return [txt]


def _fmt_s(s: float) -> str:
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3g} ms"
    return f"{s * 1e6:.3g} µs"
