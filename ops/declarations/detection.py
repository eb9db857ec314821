"""MXNet's contrib operators for object detection (SSD, GluonCV): box_iou, box_nms and
MultiBoxPrior, with numpy references matching MXNet 1.9.1 (checked in tests/compat) and MXNet's
gradients. Boxes are (x1, y1, x2, y2) corners or (x, y, w, h) centres; areas have no +1."""
from __future__ import annotations

import ast
import math

import numpy as np

from ..attrs import Attr
from ..errors import OpAttributeError, ShapeError
from ..registry import OpDef, register
from .common import like


# -- box_iou: intersection over union of every pair of boxes -----------------------------------------

def _corners(boxes, fmt):
    if fmt == "center":
        x, y, w, h = (boxes[..., i] for i in range(4))
        return x - w / 2, y - h / 2, x + w / 2, y + h / 2
    return tuple(boxes[..., i] for i in range(4))


def _iou_infer(lhs, rhs, format):
    if lhs.shape[-1:] != (4,) or rhs.shape[-1:] != (4,) or lhs.dtype != rhs.dtype:
        raise ShapeError(f"_contrib_box_iou: boxes need a last axis of 4 and one dtype, got lhs {lhs.dtype}"
                         f"{list(lhs.shape)} and rhs {rhs.dtype}{list(rhs.shape)}")
    return like(lhs, tuple(lhs.shape[:-1]) + tuple(rhs.shape[:-1]))


def _iou_np(lhs, rhs, format):
    a = [c.reshape(c.shape + (1,) * (rhs.ndim - 1)) for c in _corners(lhs.astype(np.float64), format)]
    b = _corners(rhs.astype(np.float64), format)
    width = np.maximum(np.minimum(a[2], b[2]) - np.maximum(a[0], b[0]), 0)
    height = np.maximum(np.minimum(a[3], b[3]) - np.maximum(a[1], b[1]), 0)
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    return iou.astype(lhs.dtype)


register(OpDef("_contrib_box_iou", infer=_iou_infer, compute=_iou_np, inputs=("lhs", "rhs"),
               attrs={"format": Attr("str", "corner", choices=("corner", "center"))},
               gradient=lambda F, ins, outs, gs, attrs: [F.zeros_like(ins[0]), F.zeros_like(ins[1])],
               doc="IoU of every lhs box with every rhs box (corner: x1 y1 x2 y2; center: x y w h); 0 where "
                   "the union is empty. Its gradient is zero, as MXNet's."))


# -- box_nms: non-maximum suppression, rows sorted by score, the suppressed filled with -1 ---------------
_NMS_ATTRS = {"overlap_thresh": Attr("float", 0.5), "valid_thresh": Attr("float", 0.0), "topk": Attr("int", -1),
              "coord_start": Attr("int", 2), "score_index": Attr("int", 1), "id_index": Attr("int", -1),
              "background_id": Attr("int", -1), "force_suppress": Attr("bool", False),
              "in_format": Attr("str", "corner", choices=("corner", "center")),
              "out_format": Attr("str", "corner", choices=("corner", "center"))}


def _nms_infer(x, coord_start, score_index, id_index, **_):
    width = x.shape[-1] if x.ndim >= 2 else 0
    if x.ndim < 2 or coord_start + 4 > width or not 0 <= score_index < width or id_index >= width:
        raise ShapeError(f"_contrib_box_nms: data {tuple(x.shape)} must be (..., boxes, width) with the score at "
                         f"{score_index}, the 4 coordinates from {coord_start} and the class id at {id_index} "
                         f"inside the width")
    return [x, like(x, tuple(x.shape[:-1]))]


def _suppressed(kept_boxes, box, thresh):
    if not kept_boxes:
        return False
    iou = _iou_np(np.asarray(kept_boxes), box[None], "corner")
    return bool(np.any(iou > thresh))


def _nms_rows(rows, overlap_thresh, valid_thresh, topk, coord_start, score_index, id_index, background_id,
              force_suppress, in_format):
    """Indices of the rows kept, best score first (ties in input order), as MXNet 1.9.1's box_nms."""
    scores = rows[:, score_index]
    valid = scores > valid_thresh
    if id_index >= 0:
        valid &= rows[:, id_index] != background_id
    order = [int(i) for i in np.argsort(-scores, kind="stable") if valid[i]]
    if topk > 0:
        order = order[:topk]
    corners = np.stack(_corners(rows[:, coord_start:coord_start + 4].astype(np.float64), in_format), axis=-1)
    kept, kept_by_class = [], {}
    for i in order:
        cls = None if force_suppress or id_index < 0 else rows[i, id_index]
        if not _suppressed(kept_by_class.get(cls, []), corners[i], overlap_thresh):
            kept.append(i)
            kept_by_class.setdefault(cls, []).append(corners[i])
    return kept


def _to_format(rows, coord_start, in_format, out_format):
    if in_format == out_format:
        return rows
    rows = rows.copy()
    c = rows[:, coord_start:coord_start + 4].astype(np.float64)
    if out_format == "center":
        c = np.stack([(c[:, 0] + c[:, 2]) / 2, (c[:, 1] + c[:, 3]) / 2, c[:, 2] - c[:, 0], c[:, 3] - c[:, 1]], axis=-1)
    else:
        c = np.stack(_corners(c, "center"), axis=-1)
    rows[:, coord_start:coord_start + 4] = c
    return rows


def _nms_np(x, out_format, **attrs):
    flat = x.reshape((-1,) + x.shape[-2:])
    out = np.full(flat.shape, -1, x.dtype)
    index = np.full(flat.shape[:-1], -1, x.dtype)
    for b, rows in enumerate(flat):
        kept = _nms_rows(rows, **attrs)
        out[b, :len(kept)] = _to_format(rows[kept], attrs["coord_start"], attrs["in_format"], out_format)
        index[b, :len(kept)] = kept
    return out.reshape(x.shape), index.reshape(x.shape[:-1])


register(OpDef("_contrib_box_nms", infer=_nms_infer, compute=_nms_np, attrs=_NMS_ATTRS,
               num_outputs=2, num_visible_outputs=1, aliases=("_contrib_box_non_maximum_suppression",),
               gradient=lambda F, ins, outs, gs, attrs: [F._box_nms_grad(gs[0], outs[1])],
               doc="Non-maximum suppression per batch: valid rows (score > valid_thresh, not background) by "
                   "score, each dropped when it overlaps a kept row of its class (any class with "
                   "force_suppress) by IoU > overlap_thresh; kept rows first, the rest -1. Hidden output: "
                   "each output row's source row."))


def _nms_grad_np(g, index):
    flat_g = g.reshape((-1,) + g.shape[-2:])
    flat_i = index.reshape(flat_g.shape[:-1]).astype(np.int64)
    out = np.zeros_like(flat_g)
    for b in range(flat_g.shape[0]):
        rows = flat_i[b] >= 0
        out[b, flat_i[b][rows]] = flat_g[b][rows]
    return out.reshape(g.shape)


register(OpDef("_box_nms_grad", infer=lambda g, index: g, compute=_nms_grad_np, inputs=("ograd", "index"),
               gradient=lambda F, ins, outs, gs, attrs: [F._box_nms_grad_back(gs[0], ins[1]), None],
               doc="The gradient of _contrib_box_nms: each kept row's gradient back at its source row."))

register(OpDef("_box_nms_grad_back", infer=lambda g, index: g,
               compute=lambda g, index: _nms_gather_np(g, index), inputs=("ograd", "index"),
               gradient=lambda F, ins, outs, gs, attrs: [F._box_nms_grad(gs[0], ins[1]), None],
               doc="The adjoint of _box_nms_grad: source rows gathered into output order, -1 rows zero."))


def _nms_gather_np(g, index):
    flat_g = g.reshape((-1,) + g.shape[-2:])
    flat_i = index.reshape(flat_g.shape[:-1]).astype(np.int64)
    out = np.zeros_like(flat_g)
    for b in range(flat_g.shape[0]):
        rows = flat_i[b] >= 0
        out[b][rows] = flat_g[b, flat_i[b][rows]]
    return out.reshape(g.shape)


# -- MultiBoxPrior: SSD's anchor boxes, one set per feature-map pixel ----------------------------------

def _float_tuple(op, name, value) -> tuple:
    """A tuple-of-floats attribute as MXNet writes it: (0.5, 0.25), '(0.5,0.25)', or one number."""
    if isinstance(value, str):
        value = ast.literal_eval(value)
    value = (value,) if isinstance(value, (int, float)) else tuple(value)
    try:
        return tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise OpAttributeError(f"{op}: attribute {name}={value!r} must be numbers") from None


_PRIOR_ATTRS = {"sizes": Attr("any", (1.0,)), "ratios": Attr("any", (1.0,)), "clip": Attr("bool", False),
                "steps": Attr("any", (-1.0, -1.0)), "offsets": Attr("any", (0.5, 0.5))}


def _prior_count(x, sizes, ratios):
    if x.ndim != 4:
        raise ShapeError(f"_contrib_MultiBoxPrior: data must be 4-D (N, C, H, W), got {tuple(x.shape)}")
    n = len(_float_tuple("_contrib_MultiBoxPrior", "sizes", sizes)) + \
        len(_float_tuple("_contrib_MultiBoxPrior", "ratios", ratios)) - 1
    return x.shape[2] * x.shape[3] * n


def _prior_np(x, sizes, ratios, clip, steps, offsets):
    op = "_contrib_MultiBoxPrior"
    sizes, ratios = _float_tuple(op, "sizes", sizes), _float_tuple(op, "ratios", ratios)
    (step_y, step_x), (off_y, off_x) = _float_tuple(op, "steps", steps), _float_tuple(op, "offsets", offsets)
    h, w = x.shape[2:]
    step_y, step_x = (1.0 / h if step_y <= 0 else step_y), (1.0 / w if step_x <= 0 else step_x)
    # half extents: every size at ratios[0], then sizes[0] at each further ratio (MXNet's order)
    shapes = [(s, ratios[0]) for s in sizes] + [(sizes[0], r) for r in ratios[1:]]
    half = np.array([(s * h / w * math.sqrt(r) / 2, s / math.sqrt(r) / 2) for s, r in shapes])
    cy = (np.arange(h) + off_y) * step_y
    cx = (np.arange(w) + off_x) * step_x
    centers = np.stack(np.meshgrid(cx, cy), axis=-1).reshape(-1, 1, 2)          # (h w, 1, [cx, cy])
    boxes = np.concatenate([centers - half[None], centers + half[None]], axis=-1).reshape(1, -1, 4)
    if clip:
        boxes = np.clip(boxes, 0.0, 1.0)
    return boxes.astype(x.dtype)


def _prior_infer(x, sizes, ratios, **_):
    return like(x, (1, _prior_count(x, sizes, ratios), 4))


register(OpDef("_contrib_MultiBoxPrior", infer=_prior_infer, compute=_prior_np, attrs=_PRIOR_ATTRS,
               gradient=lambda F, ins, outs, gs, attrs: [F.zeros_like(ins[0])],
               doc="SSD anchors (x1, y1, x2, y2) centred on every pixel of an NCHW feature map: each size at "
                   "the first ratio, then the first size at the other ratios. Depends on the shape only."))
