"""The operator registry: every operator is one `OpDef`, declared once in `ops/declarations/`.

An OpDef says everything about an operator: its MXNet name and aliases, input names, attribute
schema, shape/dtype inference, the numpy reference (eager mode and the oracle for every compiled
result), the gradient as a rule that builds more operators, and how it lowers to a backend.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Union

from .attrs import Attr, FrozenAttrs, parse_attrs
from .errors import GraphcError, OpAttributeError, ShapeError, DTypeError
from .types import TensorType


@dataclass(frozen=True)
class Elementwise:
    """Lowers to one scalar formula per element: formula(*ScalarExpr, **attrs) -> ScalarExpr.
    Inputs broadcast to the output shape (numpy rules). `applies(in_types, attrs) -> bool`, when
    given, says for which input types that holds (e.g. `where` with a per-row condition does
    not broadcast like numpy); elsewhere the op runs on its host fallback."""
    formula: Callable
    applies: Callable | None = None

    def applies_to(self, in_types, attrs) -> bool:
        return self.applies is None or bool(self.applies(in_types, attrs))


@dataclass(frozen=True)
class Reduction:
    """Lowers to a reduction over `axes(in_type, attrs)` of kind sum/max/min/prod; `finish`
    (optional formula over (acc, count)) turns the accumulator into the result, e.g. mean."""
    kind: str
    axes: Callable
    finish: Callable | None = None


@dataclass(frozen=True)
class Library:
    """Lowers to a library routine the backend provides (e.g. 'gemm')."""
    routine: str


@dataclass(frozen=True)
class View:
    """Output aliases input 0's bytes with a new shape (contiguous data): no copy."""


@dataclass(frozen=True)
class Movement:
    """Output elements are input elements moved (slices, joins, splits, transposes): `pieces(
    in_types, out_types, attrs) -> [graphc.ops.layout.Copy]`, run in order; None from `pieces`
    means this instance has no such description (it runs on the host fallback)."""
    pieces: Callable


@dataclass(frozen=True)
class Take:
    """Rows picked by an index array along an axis: out = data.take(fix(index), axis), or with
    scatter=True its adjoint, out = zeros; out[.., fix(index[i]), ..] += data[.., i, ..].
    data/index: input positions; mode(attrs): 'clip' | 'wrap' (how an index is brought into
    range), or None when this instance must run on the host (e.g. mode='raise'); axis(attrs, ndim).
    per_position=True: one index per output position instead of per gathered row (pick:
    out[o, j] = data[o, fix(index[o, j]), j])."""
    data: int
    index: int
    axis: Callable
    mode: Callable
    scatter: bool = False
    per_position: bool = False


Lowering = Union[Elementwise, Reduction, Library, View, Movement, Take, None]


@dataclass(frozen=True)
class OpDef:
    """One operator.

    infer(*in_types, **attrs) -> TensorType | list[TensorType]; raises ShapeError/DTypeError
        with a message naming both shapes (the op name and node are added by the caller).
    compute(*arrays, **attrs) -> ndarray | tuple[ndarray]: the numpy reference. Ops with
        random=True also get rng= (numpy Generator); ops with uses_training=True get training=.
    gradient(F, inputs, outputs, ograds, attrs) -> list (one per input, None = no gradient).
        F is a namespace of operator functions (graphc.nd when eager, a graph builder when
        differentiating a graph); values support + - * / and .shape/.dtype either way.
    """
    name: str
    infer: Callable
    compute: Callable
    inputs: Union[tuple, Callable] = ("data",)
    attrs: dict = field(default_factory=dict)
    gradient: Callable | None = None
    num_outputs: Union[int, Callable] = 1
    num_visible_outputs: Union[int, Callable, None] = None
    aliases: tuple = ()
    lowering: Lowering = None
    random: bool = False
    uses_training: bool = False
    aux_inputs: tuple = ()          # indices of inputs the op mutates (BatchNorm moving stats)
    # (output index, input index) pairs: that output is the new value of that (auxiliary) input.
    # The graph stays functional; eager mode and compiled blocks write the value back after
    # running (MXNet mutates in place; a pure graph keeps passes simple and correct).
    mutates: tuple = ()
    # infer_missing(in_types with None for unknown, attrs) -> in_types with guesses filled in:
    # what this op needs of inputs whose shape is not known yet (MXNet's files leave 0 in the
    # begin-state shape of an RNN, to be filled from the data's batch size). Optional.
    infer_missing: Callable | None = None
    # flops(in_types, out_types, attrs) -> float: arithmetic of one forward run, for the cost
    # model that places nodes on devices (passes/cost_model.py). None: one per output element,
    # right for elementwise ops and movements; heavy ops (gemms, convolutions, norms) declare it.
    flops: Callable | None = None
    doc: str = ""

    def input_names(self, attrs) -> tuple:
        return self.inputs(attrs) if callable(self.inputs) else self.inputs

    def n_outputs(self, attrs) -> int:
        return self.num_outputs(attrs) if callable(self.num_outputs) else self.num_outputs

    def n_visible(self, attrs) -> int:
        v = self.num_visible_outputs
        if v is None:
            return self.n_outputs(attrs)
        return v(attrs) if callable(v) else v

    def parse(self, attrs: dict) -> FrozenAttrs:
        return parse_attrs(self.name, self.attrs, attrs)

    def infer_types(self, in_types, attrs, where: str = "") -> list:
        """Infer output types; errors name the operator and node (`where`)."""
        label = f"{self.name} {where}".strip()
        names = self.input_names(attrs)
        if not callable(self.inputs) and len(in_types) != len(names):
            raise ShapeError(f"{label}: expects {len(names)} inputs {list(names)}, got {len(in_types)}")
        try:
            out = self.infer(*in_types, **attrs)
        except (ShapeError, DTypeError, OpAttributeError) as exc:
            msg = str(exc)
            if msg.startswith(self.name + ":"):
                msg = msg[len(self.name) + 1:].lstrip()
            elif msg.startswith(self.name + " "):
                raise
            raise type(exc)(f"{label}: {msg}") from None
        out = list(out) if isinstance(out, (list, tuple)) else [out]
        n = self.n_outputs(attrs)
        if len(out) != n:
            raise GraphcError(f"{label}: inference gave {len(out)} outputs, the op declares {n}")
        device = in_types[0].device if in_types else "cpu(0)"
        return [t if t.device == device else t.with_(device=device) for t in out]

    def run(self, arrays, attrs, rng=None, training=False) -> tuple:
        """Run the numpy reference, always returning a tuple of arrays."""
        kw = dict(attrs)
        if self.random:
            kw["rng"] = rng
        if self.uses_training:
            kw["training"] = training
        out = self.compute(*arrays, **kw)
        return tuple(out) if isinstance(out, (tuple, list)) else (out,)


_REGISTRY: dict[str, OpDef] = {}


def register(op: OpDef) -> OpDef:
    for name in (op.name,) + op.aliases:
        if name in _REGISTRY:
            raise GraphcError(f"operator {name!r} is declared twice")
        _REGISTRY[name] = op
    return op


def get_op(name: str) -> OpDef:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise OpAttributeError(f"unknown operator {name!r}") from None


def has_op(name: str) -> bool:
    return name in _REGISTRY


def all_ops() -> dict:
    """Canonical name -> OpDef (aliases folded)."""
    return {op.name: op for op in _REGISTRY.values()}


def all_names() -> list:
    return sorted(_REGISTRY)


__all__ = ["Attr", "OpDef", "Elementwise", "Reduction", "Library", "View", "Movement", "Take", "register", "get_op",
           "has_op", "all_ops", "all_names", "TensorType"]
