"""MXNet's string attributes on symbol nodes: what `sym.var` keywords become (`__shape__`,
`__dtype__` as MXNet's type flag, `__lr_mult__`...), what list_attr/attr_dict show of a node,
and the dtype a variable's `__dtype__` names. Kept apart from graphc.symbol so that the
symbol module stays about building and inspecting graphs."""
from __future__ import annotations

from .ops.errors import GraphcError

_HIDDEN_KEYS = ("ctx_group", "lr_mult", "wd_mult", "force_mirroring", "mirror_stage", "profiler_scope")


def _hinted_dtype(node) -> str:
    """The dtype a variable's __dtype__ attribute (MXNet's type flag) names, else float32."""
    from .ops.dtypes import FROM_MXNET_FLAG
    flag = node.hints.get("__dtype__")
    try:
        return FROM_MXNET_FLAG[int(flag)] if flag is not None else "float32"
    except (ValueError, KeyError):
        raise GraphcError(f"variable {node.name!r}: __dtype__={flag!r} is not one of MXNet's type flags "
                          f"{sorted(FROM_MXNET_FLAG)}") from None


# hints that are graphc's own bookkeeping, not attributes a user set
_INTERNAL_HINTS = ("kind", "given_attrs", "device")


def _node_attrs(node) -> dict:
    from .ops.attrs import format_attr
    out = {}
    if not (node.is_var or node.is_const):
        given = node.hints.get("given_attrs", ())
        out.update({k: format_attr(v) for k, v in node.attrs.items() if k in given})
    for key, value in node.hints.items():
        if key in _INTERNAL_HINTS or (not node.is_var and not key.startswith("__")):
            continue
        out[key] = value if isinstance(value, str) else format_attr(value)
        plain = key[2:-2] if key.startswith("__") and key.endswith("__") else None
        if plain in _HIDDEN_KEYS:
            out[plain] = out[key]   # MXNet lists ctx_group, lr_mult... under both spellings
    return out


_STORAGE_FLAGS = {"default": 0, "row_sparse": 1, "csr": 2}


def _var_hints(shape, lr_mult, wd_mult, dtype, init, stype, extra) -> dict:
    """var()'s keywords as MXNet's variable attributes (mxnet/symbol/symbol.py var)."""
    from .ops.dtypes import MXNET_FLAG, canonical
    hints = {}
    if shape is not None:
        hints["__shape__"] = str(tuple(int(d) if d is not None else 0 for d in shape))
    if lr_mult is not None:
        hints["__lr_mult__"] = str(lr_mult)
    if wd_mult is not None:
        hints["__wd_mult__"] = str(wd_mult)
    if dtype is not None:
        hints["__dtype__"] = str(MXNET_FLAG[canonical(dtype)])
    if init is not None:
        hints["__init__"] = init if isinstance(init, str) else init.dumps()
    if stype is not None:
        if stype not in _STORAGE_FLAGS:
            raise ValueError(f"sym.var: stype={stype!r} is not a storage type; expected one of {sorted(_STORAGE_FLAGS)}")
        hints["__storage_type__"] = str(_STORAGE_FLAGS[stype])
    for key, value in extra.items():
        if not (key.startswith("__") and key.endswith("__")):
            raise ValueError(f"sym.var: attribute name={key} is not supported. Additional attributes must "
                             "start and end with double underscores, e.g. __yourattr__")
        hints[key] = str(value)
    return hints
