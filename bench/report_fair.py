"""The fairness parts of a workload's report section (issue 14): a verdict that claims a win
only where the spreads separate, every step's loss compared across systems, and the variants
that could not run, each with its reason."""
from __future__ import annotations

HIGHER_IS_BETTER = {"steps/s", "GB/s", "GFLOP/s"}


def speeds(rec: dict) -> list:
    """The record's samples as speeds (higher is faster), or its median alone."""
    xs = rec.get("samples") or [rec["median"]]
    return list(xs) if rec["unit"] in HIGHER_IS_BETTER else [1.0 / x for x in xs if x]


def verdict(g: dict, other: dict) -> str:
    """'faster' / 'slower' only when graphc's and the other's sample ranges do not overlap."""
    gs, os_ = speeds(g), speeds(other)
    if min(gs) > max(os_):
        return "faster"
    if max(gs) < min(os_):
        return "slower"
    return "even (the spreads overlap)"


def tolerance(ref: float) -> float:
    return 1e-3 + 1e-2 * abs(ref)


def loss_lines(recs: list) -> list:
    """Compare every recorded step's loss with the reference system's (graphc when it ran):
    the same seeded weights and data make step k's loss the same up to rounding."""
    traced = [r for r in recs if r.get("losses") and "median" in r]
    if len(traced) < 2:
        return []
    ref = next((r for r in traced if r["system"] == "graphc"), traced[0])
    agree, differ = [], []
    for r in traced:
        if r is ref:
            continue
        n = min(len(r["losses"]), len(ref["losses"]))
        bad = next((i for i in range(n)
                    if not abs(r["losses"][i] - ref["losses"][i]) <= tolerance(ref["losses"][i])),
                   None)
        dev = max(abs(a - b) for a, b in zip(r["losses"][:n], ref["losses"][:n]))
        name = f"{r['system']} {r.get('variant', '')}".strip()
        if bad is None:
            agree.append(f"{name} ({n} steps, max |Δ| {dev:.2g})")
        else:
            differ.append(f"{name} from step {bad} ({r['losses'][bad]:.6g} vs "
                          f"{ref['losses'][bad]:.6g})")
    refname = f"{ref['system']} {ref.get('variant', '')}".strip()
    out = [f"Every step's loss against {refname} (tolerance 1e-3 + 1%): "
           + ("agree: " + "; ".join(agree) if agree else "none agree")
           + (". **Differ**: " + "; ".join(differ) if differ else "") + "."]
    return out


def unavailable_lines(recs: list) -> list:
    """One line per reason for the variants that were not measured."""
    by_reason: dict[str, list] = {}
    for r in recs:
        if "skip" in r:
            by_reason.setdefault(r["skip"], []).append(f"{r['system']} {r.get('variant', '')}")
    return [f"Not measured: {', '.join(v)}: {k}" for k, v in by_reason.items()]
