"""The pass pipeline: an ordered list of passes that can print the graph after each one.

GRAPHC_DUMP=1 (or =all) prints the graph after every pass; GRAPHC_DUMP=fold_constants,fuse
prints after the named ones. Under GRAPHC_VERIFY=1 (the tests set it) the verifier runs
between passes, so a pass that breaks an invariant is caught where it happens."""
from __future__ import annotations

import os
import sys
from typing import Callable

from graphc.ops.graph import Graph, verify

from .simplify import (eliminate_dead_code, eliminate_common_subexpressions, fold_constants,
                       simplify_algebra)


class Pipeline:
    def __init__(self, passes: list[Callable[[Graph], Graph]], name="pipeline"):
        self.passes = list(passes)
        self.name = name

    def __call__(self, graph: Graph, dump=None, check=None) -> Graph:
        dump = os.environ.get("GRAPHC_DUMP", "") if dump is None else dump
        wanted = {s.strip() for s in str(dump).split(",") if s.strip()}
        every = bool(wanted & {"1", "all", "true"})
        check = os.environ.get("GRAPHC_VERIFY") == "1" if check is None else check
        if every or "input" in wanted:
            print(f"-- {self.name}: input --\n{graph}", file=sys.stderr)
        for p in self.passes:
            graph = p(graph)
            if check:
                verify(graph)
            if every or p.__name__ in wanted:
                print(f"-- after {p.__name__} --\n{graph}", file=sys.stderr)
        return graph

    def __repr__(self):
        return f"Pipeline({', '.join(p.__name__ for p in self.passes)})"


SIMPLIFY = Pipeline([eliminate_dead_code, eliminate_common_subexpressions, fold_constants,
                     simplify_algebra, eliminate_common_subexpressions, eliminate_dead_code],
                    "simplify")
