"""BENCHMARKS.md's W11 section (pipeline-parallel training): one table of steps/s with the
speed-up over one device measured round by round, the machine's parallel headroom in the same
rounds, and the pipeline bubble from graphc's stage timestamps."""
from __future__ import annotations

ORDER = ("1 device", "pipelined", "pipelined, GPipe")
NAMES = {"1 device": "**graphc**, unpartitioned",
         "pipelined": "**graphc** pipelined (default: backward split at the handoff, weight gradients on the "
                      "whole batch)",
         "pipelined, GPipe": "**graphc** pipelined, `pipeline_schedule='gpipe'` (every stage whole, per micro-batch)"}


def _spread(xs, fmt):
    return f"{fmt(min(xs))}–{fmt(max(xs))}" if xs else ""


def section(recs, fmt, spread, load):
    out = ["| system | configuration | median (steps/s) | spread | speed-up (per round) | spread | "
           "bubble, forward + backward | bubble, whole step | CPU s per step | est. speed-up on free cores | "
           "first-step losses | other load |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    rows = sorted((r for r in recs if "median" in r), key=lambda r: ORDER.index(r["variant"])
                  if r["variant"] in ORDER else len(ORDER))
    for r in rows:
        up = f"{r['speedup']:.2f}" if "speedup" in r else ""
        ups = _spread(r.get("speedup_samples") or [], lambda v: f"{v:.2f}")
        bp = f"{r['bubble_pipeline']:.0%}" if "bubble_pipeline" in r else ""
        bs = f"{r['bubble_step']:.0%}" if "bubble_step" in r else ""
        losses = ", ".join(f"{v:.6f}" for v in r.get("losses") or [])
        cpu = f"{r['cpu_s_per_step']:.3f}" if "cpu_s_per_step" in r else ""
        est = f"{r['quiet_speedup']:.2f} ({r['parallelism']:.2f})" if "quiet_speedup" in r else ""
        out.append(f"| {NAMES.get(r['variant'], r['variant'])} | {r.get('config', '')} | {fmt(r['median'])} | "
                   f"{spread(r)} | {up} | {ups} | {bp} | {bs} | {cpu} | {est} | {losses} | {load(r)} |")
    for r in recs:
        if "median" not in r:
            out.append(f"| graphc {r.get('variant', '')} | | failed: {str(r.get('error', '')).replace('|', '/')[:300]} "
                       "| | | | | | | | | |")
    out.append("")
    head = next((r for r in rows if "parallel_headroom" in r), None)
    if head is not None:
        hs = head.get("parallel_headroom_samples") or []
        out.append(f"Parallel headroom of the machine in the same rounds (two 1-thread GEMM loops at once against one "
                   f"after the other; 2.00 = two free cores): median {head['parallel_headroom']:.2f}, "
                   f"{_spread(hs, lambda v: f'{v:.2f}')}. The pipeline's speed-up cannot exceed it.")
    out += ["",
            "Speed-up = steps/s of the pipelined net / steps/s of the unpartitioned net in the same round (the three "
            "nets are timed in alternation, a block of 3 steps each, in one process: GRAPHC_CPU_DEVICES gives cpu(0) "
            "and cpu(1) one core each; the unpartitioned net runs on cpu(0)). Target ≥ 1.6 (2.0 ideal; plain GPipe "
            "with 2 stages and 4 micro-batches has a 20% bubble, i.e. at most 1.6). Bubble = 1 − busy / "
            "(2 devices × wall), busy from timestamps around every stage program; 'whole step' also counts the "
            "loss and the SGD update as idle. CPU s per step: the process's CPU time per step (work done, whatever "
            "the wait): the pipeline should not add work to the unpartitioned net's. Est. speed-up on free cores: "
            "what the same steps would give on two cores nothing else uses, estimated from this run: the pipelined "
            "step's forward and backward replayed with each stage's CPU time (same greedy schedule), plus the rest "
            "of its CPU time counted as serial, against the unpartitioned net's CPU time per step; in brackets the "
            "pipelined net's own CPU time over that replayed step (its parallelism, which assumes the unpartitioned "
            "net does no more work). PyTorch has no CPU pipeline built in, so W11 has no peer.", ""]
    return out
