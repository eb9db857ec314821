"""W5 against W5b (issue 14: "W5b within 10% of W5") by hand, with more blocks than `make bench`
gives it: the same seeded 2-layer LSTM LM training step without and with word_language_model's
dropout 0.5, timed in alternating blocks (a machine shared with other work slows both alike).
The models and the step are bench/systems/graphc_w.py's (`make_lm`, `lm_stepper`), which
`run.py`'s W5b record also uses; prints the host steps, steps/s of each and the ratio.

    .venv/bin/python bench/w5b_dropout_ab.py [--blocks 6] [--steps 5]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "systems"))
import _common as C                 # noqa: E402
import graphc_w                     # noqa: E402


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--blocks", type=int, default=6)
    a.add_argument("--steps", type=int, default=5)
    args = a.parse_args()
    nets = {"W5": graphc_w.make_lm(), "W5b": graphc_w.make_lm(C.W5B_DROPOUT)}
    steps = {k: graphc_w.lm_stepper(n)[0] for k, n in nets.items()}
    for k, s in steps.items():
        s()
        s()       # compiled and warm
        print(f"{k}: host steps in the training programs: "
              f"{graphc_w._host_ops(nets[k]) or 'none'}")
    times = {k: [] for k in steps}
    for _ in range(args.blocks):
        for k, s in steps.items():
            t0 = time.perf_counter()
            for _ in range(args.steps):
                s()
            times[k].append((time.perf_counter() - t0) / args.steps)
    rate = {k: 1.0 / float(np.median(v)) for k, v in times.items()}
    for k, r in rate.items():
        print(f"{k}: {r:.2f} steps/s (median of {args.blocks} blocks of {args.steps} steps; "
              f"blocks {', '.join(f'{1 / t:.2f}' for t in times[k])})")
    ratios = [b / a for a, b in zip(times["W5b"], times["W5"])]
    print(f"W5b / W5 = {rate['W5b'] / rate['W5']:.3f} (per-pair {min(ratios):.3f}-{max(ratios):.3f})")


if __name__ == "__main__":
    main()
