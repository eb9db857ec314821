"""The pass pipeline: an ordered list of passes that can print the graph after each one.

GRAPHC_DUMP=1 (or =all) prints the graph after every pass that changed it (one line saying
"unchanged" for a pass that did not); GRAPHC_DUMP=fold_constants,fuse_elementwise prints after
the named ones. Under GRAPHC_VERIFY=1 (the tests set it) the verifier runs
between passes, so a pass that breaks an invariant is caught where it happens.

Three pipelines: SIMPLIFY (the front end runs it on every traced graph), INFERENCE (rewrites
valid only when the graph runs for inference, e.g. folding BatchNorm into convolutions;
`graphc.compiler.compile_graph` runs it when training=False) and LOWER (what a graph goes
through just before a backend takes it; compile_graph runs it, then plans memory). LOWER
comes in two variants, `lower_pipeline(training)`: a compiled program runs in one mode only,
so lowering specialises the graph to it (`_is_training`, BatchNorm's statistics)."""
from __future__ import annotations

import os
import sys
from typing import Callable

from graphc.ops.graph import Graph, verify

from .channels_last import lower_channels_last
from .fold_batchnorm import fold_batchnorm_inference
from .decompose import decompose_softmax
from .fold_onehot_sum import fold_onehot_sums
from .decompose_norms import decompose_norms, specialize_training
from .fuse import fuse_elementwise
from .fuse_attention import fuse_attention
from .fuse_softmax_ce import fuse_softmax_ce
from .merge_gemms import merge_summed_gemms
from .simplify import (eliminate_dead_code, eliminate_common_subexpressions, fold_constants,
                       simplify_algebra)


def dump_wanted(name: str, dump=None) -> bool:
    """Whether GRAPHC_DUMP (or `dump`, same syntax) asks for what happens at `name`: a pass
    name, 'input', or 1/all/true for everything."""
    dump = os.environ.get("GRAPHC_DUMP", "") if dump is None else dump
    wanted = {s.strip() for s in str(dump).split(",") if s.strip()}
    return bool(wanted & {"1", "all", "true"}) or name in wanted


_last_dump = None   # the listing a pipeline's dump ended with


class Pipeline:
    def __init__(self, passes: list[Callable[[Graph], Graph]], name="pipeline"):
        self.passes = list(passes)
        self.name = name

    def __call__(self, graph: Graph, dump=None, check=None) -> Graph:
        dump = os.environ.get("GRAPHC_DUMP", "") if dump is None else dump
        check = os.environ.get("GRAPHC_VERIFY") == "1" if check is None else check
        global _last_dump
        text = None     # the listing of `graph`, once a dump has made it
        if dump_wanted("input", dump):
            text = str(graph)
            # the graph the previous pipeline ended with (simplify -> inference -> lower) is
            # not printed twice
            if text == _last_dump:
                print(f"-- {self.name}: input: unchanged --", file=sys.stderr)
            else:
                print(f"-- {self.name}: input --\n{text}", file=sys.stderr)
        for p in self.passes:
            wanted = dump_wanted(p.__name__, dump)
            before = (text if text is not None else str(graph)) if wanted else None
            graph = p(graph)
            text = None
            if check:
                verify(graph)
            if wanted:
                text = str(graph)
                # a pass that found nothing to do says so in one line instead of repeating the graph
                if text == before:
                    print(f"-- after {p.__name__}: unchanged --", file=sys.stderr)
                else:
                    print(f"-- after {p.__name__} --\n{text}", file=sys.stderr)
        if text is not None or dump_wanted("input", dump):
            _last_dump = text if text is not None else str(graph)
        return graph

    def __repr__(self):
        return f"Pipeline({', '.join(p.__name__ for p in self.passes)})"


SIMPLIFY = Pipeline([eliminate_dead_code, eliminate_common_subexpressions, fold_constants,
                     simplify_algebra, eliminate_common_subexpressions, eliminate_dead_code],
                    "simplify")
# only for graphs compiled for inference: BatchNorm's moving statistics are then constants of
# the run, so it folds into the convolution before it (the fold leaves dead nodes behind)
INFERENCE = Pipeline([fold_batchnorm_inference, eliminate_dead_code], "inference")


def bind(graph_pass, **kwargs) -> Callable[[Graph], Graph]:
    """`graph_pass` with keyword arguments fixed, under its own name (GRAPHC_DUMP uses it)."""
    def bound(graph: Graph) -> Graph:
        return graph_pass(graph, **kwargs)
    bound.__name__ = bound.__qualname__ = graph_pass.__name__
    return bound


def _lower(training: bool) -> Pipeline:
    # the decompositions after CSE: they build `x - mean` / `x - max` once per consumer on
    # purpose (so that each copy fuses into its consumer instead of being stored); CSE would
    # merge them again. lower_channels_last before CSE: the forward and the gradient transpose
    # the same data to channels first, and CSE keeps one of the two copies
    return Pipeline([bind(specialize_training, training=training), lower_channels_last, merge_summed_gemms,
                     eliminate_common_subexpressions, fuse_attention, bind(decompose_norms, training=training),
                     fuse_softmax_ce, decompose_softmax, fold_onehot_sums, fuse_elementwise], "lower")


# the last graph-to-graph steps before a backend: its `_fused_*` nodes are what a backend lowers.
# Memory planning follows it in graphc.compiler: it is an analysis (Graph -> MemoryPlan), not a
# Graph -> Graph pass, and a plan holds only for the exact graph it was made from.
LOWER_INFERENCE, LOWER_TRAINING = _lower(False), _lower(True)


def lower_pipeline(training: bool) -> Pipeline:
    """The LOWER pipeline for a program compiled for training or for inference."""
    return LOWER_TRAINING if training else LOWER_INFERENCE
