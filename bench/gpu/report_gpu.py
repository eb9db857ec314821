"""The GPU run's markdown section: one table per workload (every system's variants, medians,
spreads), graphc against the best PyTorch variant ("even" where the spreads overlap, as
shared/bench/WORKLOADS.md asks), W1b as a fraction of the copy bandwidth measured in the same run,
and every variant that failed, timed out or was skipped, with its reason (never dropped)."""
from __future__ import annotations

TITLES = {
    "W1": "W1: y = tanh(x*0.5 + 1) * sigmoid(x) + 0.1x, 2^24 float32",
    "W1b": "W1b: y = relu(x*0.5 + 1) * x - 0.25, 2^24 float32 (memory-bound)",
    "W2": "W2: MLP 784-512-512-10, batch 1, inference",
    "W3": "W3: MLP batch 256, one SGD training step",
    "W4": "W4: ResNet-18 v1, batch 1, inference",
    "W5": "W5: 2-layer LSTM LM training step (seq 35, batch 20)",
    "W8a": "W8a: BERT-base encoder, seq 128, batch 1, inference",
    "W8b": "W8b: Transformer LM training step (2 layers, d 256, seq 64, batch 32, Adam)",
    "W9": "W9: ResNet-18 v1 training step, batch 16",
}
HIGHER_IS_BETTER = {"steps/s", "GB/s", "GFLOP/s"}
W3_GFLOP = 0.82       # WORKLOADS.md: one W3 step's GEMM work


def _fmt(v) -> str:
    if v is None:
        return "-"
    a = abs(v)
    return f"{v:.3g}" if a < 1000 else f"{v:,.0f}"


def _spread(r) -> str:
    s = r.get("samples") or []
    return f"{_fmt(min(s))}-{_fmt(max(s))}" if s else "-"


def _label(r) -> str:
    return f"{r['system']} {r['variant']}"


def limits(records) -> dict:
    """{'copy_gbps': ..., 'sgemm_gflops': ...} from the torch process's W0 records."""
    out = {}
    for r in records:
        if r.get("workload") == "W0" and "median" in r:
            out["copy_gbps" if r["variant"] == "copy" else "sgemm_gflops"] = r["median"]
            if r["variant"] != "copy":
                out["sgemm_label"] = r["variant"]
    return out


def _figure(r, lim) -> str:
    wl, parts = r["workload"], []
    if wl in ("W1", "W1b") and r.get("gbps"):
        parts.append(f"{r['gbps']:.0f} GB/s")
        if wl == "W1b" and lim.get("copy_gbps"):
            parts.append(f"{r['gbps'] / lim['copy_gbps']:.2f} of copy")
    if wl == "W3" and lim.get("sgemm_gflops"):
        parts.append(f"{r['median'] * W3_GFLOP / lim['sgemm_gflops']:.2f} of GEMM bound")
    if wl == "W4" and r.get("gflops"):
        parts.append(f"{r['gflops']:.0f} GFLOP/s")
    if wl in ("W2", "W4", "W8a") and r.get("check") is not None:
        parts.append(f"output Σy·cos(i) {r['check']:.6g}")     # same across systems
    if r.get("gpu_peak_mib") is not None:
        parts.append(f"peak GPU {r['gpu_peak_mib']:.0f} MiB")
    if r.get("first_loss") is not None:
        parts.append(f"loss₀ {r['first_loss']:.5g}")
    return ", ".join(parts) or "-"


def _better(a, b, unit) -> bool:
    return a > b if unit in HIGHER_IS_BETTER else a < b


def verdict(g, peers) -> str:
    """graphc's record against the best peer's: ratio of speeds, 'faster'/'slower' only where
    the sample ranges do not overlap."""
    if not peers:
        return "no PyTorch variant measured"
    unit = g["unit"]
    best = peers[0]
    for p in peers[1:]:
        if _better(p["median"], best["median"], unit):
            best = p
    speed = (g["median"] / best["median"] if unit in HIGHER_IS_BETTER
             else best["median"] / g["median"])
    gs, bs = g.get("samples") or [g["median"]], best.get("samples") or [best["median"]]
    if unit not in HIGHER_IS_BETTER:        # times: the faster one has the smaller samples
        gs, bs = [-v for v in gs], [-v for v in bs]
    if min(gs) > max(bs):
        word = "faster"
    elif max(gs) < min(bs):
        word = "slower"
    else:
        word = "even (spreads overlap)"
    return f"graphc {speed:.2f}x the speed of {_label(best)}: **{word}**"


def render(records, meta: dict) -> str:
    info = {}
    for r in records:
        if "info" in r:
            info.update(r["info"])
    lim = limits(records)
    device = info.get("device") or info.get("graphc_device") or "an unknown device"
    lines = [f"## GPU: graphc beside PyTorch on {device}", ""]
    lines.append(f"Run {meta.get('date', '?')}: `{meta.get('command', '')}`"
                 + (" (--smoke: tiny shapes, graphc on the CUDA simulator, PyTorch on the CPU; "
                    "harness check only, not figures)" if meta.get("smoke") else ""))
    lines.append(f"PyTorch {info.get('torch', '?')} on {info.get('torch_device', '?')} "
                 f"({info.get('torch_settings', '?')}); graphc driver "
                 f"{info.get('graphc_driver', info.get('graphc_driver_error', '?'))}.")
    if lim:
        lines.append(f"Limits measured in this run: device-to-device copy "
                     f"{_fmt(lim.get('copy_gbps'))} GB/s (bytes read + written); "
                     f"{lim.get('sgemm_label', 'matmul')} {_fmt(lim.get('sgemm_gflops'))} GFLOP/s.")
    lines.append("Timing: the CPU harness's (blocks, medians, min-max spreads); W1/W1b one "
                 "device synchronization per block of calls; batch-1 inference one per call; "
                 "training steps fetch each step's loss, as on the CPU.")
    lines.append("")
    ok = [r for r in records if "median" in r and r.get("workload") != "W0"]
    for wl in meta.get("workloads", []):
        rows = [r for r in ok if r["workload"] == wl]
        if not rows:
            continue
        unit = rows[0]["unit"]
        lines += [f"### {TITLES.get(wl, wl)}", "",
                  f"| system | median ({unit}) | spread | n | figures |",
                  "|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {_label(r)} | {_fmt(r['median'])} | {_spread(r)} | "
                         f"{r.get('n_samples', '-')} | {_figure(r, lim)} |")
        g = [r for r in rows if r["system"] == "graphc"]
        if g:
            lines += ["", verdict(g[0], [r for r in rows if r["system"] != "graphc"])]
        lines.append("")
    missing = [r for r in records if ("error" in r or "skip" in r) and "info" not in r]
    if missing:
        lines += ["### Not measured", ""]
        for r in missing:
            why = r.get("error") or r.get("skip")
            lines.append(f"- {_label(r)}, {r.get('workload', '?')}: {why}")
        lines.append("")
    return "\n".join(lines)
