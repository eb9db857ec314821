"""BENCHMARKS.md's W10 section (data-parallel training): its records are not one table of one
unit, so run.py hands them here. Two tables: training steps/s per model and configuration with
the scaling efficiency, and the all-reduce GB/s of graphc's kvstore against raw mpi4py."""
from __future__ import annotations

CONFIG_LABEL = {"1x1": "1 process × 1 thread", "1x2": "1 process × 2 threads", "2x1": "2 ranks × 1 thread"}
CASE_LABEL = {"mlp": "MLP 784-512-512-10, global batch 256", "cnn": "image example's CNN (ResNet 16-32-64), global batch 64"}


# graphc's all-reduce records (graphc_w10.allreduce) as the table names them
GRAPHC_ALLREDUCE_LABEL = {
    "kvstore dist_sync pushpull": "**graphc** kvstore dist_sync `pushpull` into separate `out`",
    "Trainer.allreduce_grads (in place)": "**graphc** `Trainer.allreduce_grads` (in place, big keys unpacked)",
    "Trainer.allreduce_grads (overlap reducer's flush)":
        "**graphc** `Trainer.allreduce_grads` through the overlapped reducer (kvstore/overlap.py), no backward",
}


def _family(rec):
    """The records whose 1x1 run is this record's baseline: graphc's one variant, or PyTorch's
    eager / compile."""
    if rec["system"] == "graphc":
        return "graphc"
    return rec["system"] + ":" + rec["variant"].split(",")[0]


def _name(rec):
    if rec["system"] == "graphc":
        how = "kvstore dist_sync over MPI, " + rec["variant"].split(", ", 1)[1] if rec["config"] == "2x1" \
            else "Gluon hybridized"
        return f"**graphc** ({how})"
    if rec["system"] == "torch":
        how = rec["variant"].split(",")[0]
        return f"PyTorch {'eager' if how == 'eager' else 'torch.compile'}" + \
            (" + DDP (gloo)" if rec["config"] == "2x1" else "")
    return f"{rec['system']} {rec['variant']}"


def section(recs, fmt, spread, load, meta_line=None):
    out = []
    if meta_line:
        out += [meta_line, ""]
    train = [r for r in recs if r.get("case") in CASE_LABEL and "median" in r]
    base = {(r["case"], _family(r)): r["median"] for r in train if r["config"] == "1x1"}
    for case, title in CASE_LABEL.items():
        rows = [r for r in train if r["case"] == case]
        out += [f"### {title}", "",
                "| system | configuration | median (steps/s) | spread | scaling efficiency | first-step losses "
                "(global batch) | first-call s | other load |",
                "|---|---|---|---|---|---|---|---|"]
        for r in sorted(rows, key=lambda r: (r["config"] != "2x1", -r["median"])):
            b = base.get((case, _family(r)))
            eff = f"{r['median'] / (2 * b):.2f}" if b and r["config"] != "1x1" else ""
            losses = ", ".join(f"{v:.6f}" for v in r.get("losses") or [])
            st = r.get("setup_s")
            out.append(f"| {_name(r)} | {CONFIG_LABEL[r['config']]} | {fmt(r['median'])} | {spread(r)} | {eff} | "
                       f"{losses} | {'' if st is None else f'{st:.2f}'} | {load(r)} |")
        for r in recs:
            if r.get("case") == case and "median" not in r:
                out.append(f"| {r['system']} {r.get('variant', '')} | {CONFIG_LABEL.get(r.get('config'), '')} | "
                           f"failed: {str(r.get('error', '')).replace('|', '/')[:300]} | | | | | |")
        out.append("")
        g2 = [r for r in rows if r["system"] == "graphc" and r["config"] == "2x1"]
        t2 = [r for r in rows if r["system"] == "torch" and r["config"] == "2x1"]
        g1 = [r for r in rows if r["system"] == "graphc" and r["config"] == "1x2"]
        if g2 and t2:
            g, t = max(g2, key=lambda r: r["median"]), max(t2, key=lambda r: r["median"])
            ratio = g["median"] / t["median"]
            out.append(f"2 ranks × 1 thread: graphc's best ({fmt(g['median'])} steps/s) / PyTorch DDP's best "
                       f"({_name(t)}, {fmt(t['median'])}) = **{ratio:.2f}** (target ≥ 1).")
        if g2 and g1:
            g = max(g2, key=lambda r: r["median"])
            same = all(abs(a - b) <= 1e-4 * max(1.0, abs(b)) for a, b in zip(g["losses"], g1[0]["losses"]))
            note = ("equal" if same else "not equal")
            if case == "cnn" and not same:
                note += (" — expected: BatchNorm normalises over each rank's 32 images in the 2-rank run and over "
                         "all 64 in one process (as in MXNet and in DDP without SyncBatchNorm); the 2-rank losses "
                         "are to be compared with PyTorch DDP's")
            out.append(f"graphc 2 ranks vs 1 process, losses of the first steps: {note}.")
        out.append("")
    ar = [r for r in recs if r.get("case") == "allreduce"]
    if ar:
        nbytes = next((r["bytes"] for r in ar if r.get("bytes")), None)
        out += ["### All-reduce of the MLP's parameter buffers (6 buffers"
                + (f", {nbytes / 1e6:.2f} MB" if nbytes else "") + "), 2 ranks", "",
                "| what | median (GB/s) | spread | other load |", "|---|---|---|---|"]
        ok = sorted([r for r in ar if "median" in r], key=lambda r: -r["median"])
        for r in ok:
            who = GRAPHC_ALLREDUCE_LABEL.get(r["variant"], f"**graphc** {r['variant']}") if r["system"] == "graphc" \
                else (f"PyTorch {r['variant']}" if r["system"] == "torch" else f"raw {r['variant']}")
            out.append(f"| {who} | {fmt(r['median'])} | {spread(r)} | {load(r)} |")
        for r in ar:
            if "median" not in r:
                out.append(f"| {r['system']} {r.get('variant', '')} | failed: {str(r.get('error', ''))[:300]} | | |")
        raw = next((r for r in ok if r["variant"] == "mpi4py Allreduce, per buffer"), None)
        out.append("")
        ratios = [f"{GRAPHC_ALLREDUCE_LABEL.get(r['variant'], r['variant']).replace('**graphc** ', '')} "
                  f"**{r['median'] / raw['median']:.2f}**"
                  for r in ar if "median" in r and r["system"] == "graphc"] if raw else []
        if ratios:
            out.append("graphc / raw mpi4py Allreduce on the same buffers: " + "; ".join(ratios)
                       + " (target ≥ 0.90). GB/s = bytes of the buffers / seconds per all-reduce of all of "
                       "them. `pushpull` into separate `out` arrays does what MXNet's API asks beyond the sum: "
                       "it leaves the pushed arrays as they were, keeps the sum under each key and copies it "
                       "to the `out` arrays (one more copy of the buffers than the raw call). The Trainer's "
                       "all-reduce (update_on_kvstore=False) sums each big gradient in place in its own memory.")
        out.append("")
    out += ["Scaling efficiency = steps/s / (2 × steps/s of the same system on 1 process × 1 thread) at the same "
            "global batch: 1.00 would be perfect use of the 2 cores. Every rank trains on its half of the same "
            "seeded batch with the same seeded weights; losses are the global batch's mean, summed over ranks. "
            "Samples: blocks of 10 (MLP) or 5 (CNN) steps after warm-up; each configuration runs in its own "
            "processes (`BENCH_CHILD_THREADS`, `GRAPHC_NUM_THREADS`); graphc's 2 ranks under MPICH's `mpiexec -n 2`, "
            "PyTorch's under `torchrun --nproc-per-node 2`.", ""]
    return out
