"""Operator cases for MXNet's contrib operators (ops/declarations/contrib.py, detection.py,
ctc.py), the pieces of traced control flow (control_flow.py) and _eye/_linspace (ranges.py),
appended to op_cases.CASES by the import at the end of op_cases.py. Expectations are plain numpy
written here, independent of the declarations (bilinear resizing pixel by pixel, CTC by
enumerating every alignment)."""
from __future__ import annotations

import itertools
import math

import numpy as np

from op_cases import FD_EXEMPT, U, case

_rng = np.random.default_rng(2468)


# -- bilinear resizing, one output pixel at a time -------------------------------------------------

def _source(d, n_in, n_out, align_corners):
    if align_corners:
        return d * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    return max((d + 0.5) * n_in / n_out - 0.5, 0.0)


def _bilinear(x, oh, ow, align_corners=True):
    n, c, h, w = x.shape
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        sy = _source(i, h, oh, align_corners)
        y0 = min(int(math.floor(sy)), h - 1)
        y1, fy = min(y0 + 1, h - 1), sy - y0
        for j in range(ow):
            sx = _source(j, w, ow, align_corners)
            x0 = min(int(math.floor(sx)), w - 1)
            x1, fx = min(x0 + 1, w - 1), sx - x0
            out[:, :, i, j] = ((1 - fy) * (1 - fx) * x[:, :, y0, x0] + (1 - fy) * fx * x[:, :, y0, x1]
                               + fy * (1 - fx) * x[:, :, y1, x0] + fy * fx * x[:, :, y1, x1])
    return out


def _bilinear_adjoint(g, h, w, align_corners=True):
    """<resize(x), g> = <x, adjoint(g)> for every x: the adjoint by probing each input pixel."""
    n, c, oh, ow = g.shape
    out = np.zeros((n, c, h, w))
    for y in range(h):
        for x in range(w):
            probe = np.zeros((1, 1, h, w))
            probe[0, 0, y, x] = 1.0
            out[:, :, y, x] = np.sum(_bilinear(probe, oh, ow, align_corners)[0, 0] * g, axis=(2, 3))
    return out


case("_contrib_BilinearResize2D", [U(1, 2, 3, 4)], {"height": 5, "width": 3}, lambda x: _bilinear(x, 5, 3))
case("_contrib_BilinearResize2D", [U(2, 1, 4, 3)], {"height": 2, "width": 7, "align_corners": False},
     lambda x: _bilinear(x, 2, 7, False))
case("_contrib_BilinearResize2D", [U(1, 1, 3, 4)], {"scale_height": 2.0, "scale_width": 0.5},
     lambda x: _bilinear(x, 6, 2))
case("_contrib_BilinearResize2D", [U(1, 1, 3, 4)], {"scale_height": 2.0, "scale_width": 0.5, "mode": "odd_scale"},
     lambda x: _bilinear(x, 5, 2))
case("_contrib_BilinearResize2D", [U(1, 1, 5, 4)], {"mode": "to_odd_up"}, lambda x: _bilinear(x, 5, 5))
case("_contrib_BilinearResize2D", [U(1, 2, 3, 3), U(2, 2, 4, 1)], {"mode": "like"},
     lambda x, like: _bilinear(x, 4, 1), wrt=(0,))
case("_bilinear_resize_grad", [U(1, 2, 5, 3)], {"in_size": (3, 4)}, lambda g: _bilinear_adjoint(g, 3, 4))
case("_bilinear_resize_grad", [U(1, 1, 2, 7)], {"in_size": (4, 3), "align_corners": False},
     lambda g: _bilinear_adjoint(g, 4, 3, False))


# -- boolean_mask's gradient, index_copy, arange_like, index_array -----------------------------------
_MASK = np.array([1.0, 0.0, 2.0, 0.0])


def _unmask(g, mask, x):
    out = np.zeros(x.shape)
    out[[0, 2]] = g
    return out


case("_boolean_mask_grad", [U(2, 3), _MASK, U(4, 3)], {}, _unmask, wrt=(0,))

_ROWS = np.array([3.0, 0.0])


def _index_copy(old, rows, new):
    out = old.copy()
    out[3], out[0] = new[0], new[1]
    return out


def _zero_rows(g, rows):
    out = g.copy()
    out[3] = out[0] = 0.0
    return out


case("_contrib_index_copy", [U(5, 3), _ROWS, U(2, 3)], {}, _index_copy, wrt=(0, 2))
case("_index_copy_old_grad", [U(5, 3), _ROWS], {}, _zero_rows, wrt=(0,))
case("_contrib_arange_like", [U(2, 3)], {"start": 1.0, "step": 2.0, "repeat": 2},
     lambda x: np.array([[1.0, 1, 3], [3, 5, 5]]))
case("_contrib_arange_like", [U(2, 3)], {"axis": -1}, lambda x: np.array([0.0, 1, 2]))


def _indices(shape, axes):
    out = np.zeros(shape + (len(axes),))
    for pos in np.ndindex(*shape):
        out[pos] = [pos[a] for a in axes]
    return out


case("_contrib_index_array", [U(2, 3)], {}, lambda x: _indices((2, 3), (0, 1)), f32=False)
case("_contrib_index_array", [U(2, 3, 2)], {"axes": (2, -3)}, lambda x: _indices((2, 3, 2), (2, 0)), fd=False,
     f32=False)


# -- elementwise -----------------------------------------------------------------------------------
case("_contrib_div_sqrt_dim", [U(2, 3, 4)], {}, lambda x: x / 2.0)
case("_contrib_quadratic", [U(3, 4)], {"a": 0.5, "b": -2.0, "c": 1.0}, lambda x: 0.5 * x * x - 2 * x + 1)
case("_contrib_gradientmultiplier", [U(3, 2)], {"scalar": -0.5}, lambda x: x)
_HALVES = np.array([-2.5, -1.5, -0.5, -0.2, 0.0, 0.5, 1.5, 2.5, 3.7])
case("_contrib_round_ste", [_HALVES], {}, lambda x: np.array([-3.0, -2, -1, 0, 0, 1, 2, 3, 4]))
case("_contrib_sign_ste", [_HALVES], {}, lambda x: np.array([-1.0, -1, -1, -1, 0, 1, 1, 1, 1]))
FD_EXEMPT["_contrib_gradientmultiplier"] = ("its gradient is the head gradient times `scalar` by definition, not the "
                                            "identity's derivative (checked in tests/ops/test_contrib_ops.py)")
FD_EXEMPT["_contrib_round_ste"] = ("the straight-through estimator: its gradient is the identity's by definition, "
                                   "not round's zero derivative (checked in tests/ops/test_contrib_ops.py)")
FD_EXEMPT["_contrib_sign_ste"] = ("the straight-through estimator: its gradient is the identity's by definition, "
                                  "not sign's zero derivative (checked in tests/ops/test_contrib_ops.py)")


# -- the pieces of traced control flow ---------------------------------------------------------------
case("_cond_select", [np.array([1.0]), U(2, 3), U(2, 3)], {}, lambda p, a, b: a, wrt=(1, 2))
case("_cond_select", [np.array([0.0]), U(2, 3), U(2, 3)], {}, lambda p, a, b: b, wrt=(1, 2))
case("_cond_select", [np.array(-2.0), U(4), U(4)], {}, lambda p, a, b: a, wrt=(1, 2))
case("_cond_gate", [U(2, 3), np.array([0.0])], {}, lambda x, p: x, fd=False)
case("_cond_gate", [U(2, 3), np.array([1.0])], {"negate": True}, lambda x, p: x, fd=False)
case("_cond_gate", [U(3), np.array([1.0])], {}, lambda x, p: x, wrt=(0,))


# -- box_iou ---------------------------------------------------------------------------------------

def _iou_pairs(lhs, rhs, center=False):
    def corners(b):
        return (b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2) if center else tuple(b)
    out = np.zeros(lhs.shape[:-1] + rhs.shape[:-1])
    for i in np.ndindex(*lhs.shape[:-1]):
        for j in np.ndindex(*rhs.shape[:-1]):
            a, b = corners(lhs[i]), corners(rhs[j])
            inter = max(min(a[2], b[2]) - max(a[0], b[0]), 0) * max(min(a[3], b[3]) - max(a[1], b[1]), 0)
            union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
            out[i + j] = inter / union if union > 0 else 0.0
    return out


_BOXES = np.array([[0.0, 0, 2, 2], [1, 1, 3, 3], [0, 0, 0, 0]])
case("_contrib_box_iou", [_BOXES, np.array([[1.0, 0, 2, 2], [0, 0, 0, 0]])], {}, _iou_pairs)
case("_contrib_box_iou", [_rng.uniform(0, 3, (2, 3, 4)), _rng.uniform(0.5, 2, (2, 4))], {"format": "center"},
     lambda a, b: _iou_pairs(a, b, center=True))
FD_EXEMPT["_contrib_box_iou"] = "MXNet defines box_iou's gradient as zero (checked against MXNet in tests/compat)"


# -- box_nms ---------------------------------------------------------------------------------------
# rows [class id, score, x1, y1, x2, y2]; row 1 overlaps row 0 (IoU 0.9025), row 2 is another class,
# row 3 is below valid_thresh, row 4 is background (-1), row 5 overlaps nothing
_DETECTIONS = np.array([[[0, 0.9, 0, 0, 2, 2], [0, 0.8, 0.1, 0.1, 2, 2], [1, 0.7, 0, 0, 2, 2],
                         [0, 0.05, 5, 5, 6, 6], [-1, 0.95, 0, 0, 1, 1], [0, 0.6, 3, 3, 4, 4]]])
_NMS = {"overlap_thresh": 0.5, "valid_thresh": 0.1, "id_index": 0, "score_index": 1, "coord_start": 2}


def _kept(data, rows):
    out = -np.ones(data.shape)
    out[0, :len(rows)] = data[0, rows]
    return out


# no finite differences where a class id column is read: moving an id by eps changes which rows compete
case("_contrib_box_nms", [_DETECTIONS], _NMS, lambda d: _kept(d, [0, 2, 5]), fd=False)
case("_contrib_box_nms", [_DETECTIONS], dict(_NMS, force_suppress=True), lambda d: _kept(d, [0, 5]), fd=False)
case("_contrib_box_nms", [_DETECTIONS], dict(_NMS, valid_thresh=0.0, topk=2), lambda d: _kept(d, [0]), fd=False)
case("_contrib_box_nms", [_DETECTIONS[0, :, 1:]], {"overlap_thresh": 0.95, "score_index": 0, "coord_start": 1},
     lambda d: np.concatenate([d[[4, 0, 1, 5, 3]], -np.ones((1, 5))]))   # row 2 is row 0's box
_CENTERED = np.array([[0.5, 1, 1, 2, 2], [0.4, 1, 0.5, 2, 1], [0.45, 5, 5, 1, 1]])
case("_contrib_box_nms", [_CENTERED], {"score_index": 0, "coord_start": 1, "in_format": "center",
                                       "out_format": "center", "overlap_thresh": 0.4},
     lambda d: np.array([[0.5, 1, 1, 2, 2], [0.45, 5, 5, 1, 1], [-1, -1, -1, -1, -1]]))
case("_contrib_box_nms", [_CENTERED], {"score_index": 0, "coord_start": 1, "in_format": "center",
                                       "out_format": "corner"},
     lambda d: np.array([[0.5, 0, 0, 2, 2], [0.45, 4.5, 4.5, 5.5, 5.5], [0.4, 0, 0, 2, 1]]), fd=False)
_NMS_INDEX = np.array([[2.0, 0.0, -1.0]])
case("_box_nms_grad", [U(1, 3, 4), _NMS_INDEX], {}, lambda g, i: np.stack([[g[0, 1], np.zeros(4), g[0, 0]]]),
     wrt=(0,))
case("_box_nms_grad_back", [U(1, 3, 4), _NMS_INDEX], {}, lambda g, i: np.stack([[g[0, 2], g[0, 0], np.zeros(4)]]),
     wrt=(0,))


# -- MultiBoxPrior: anchors written out for a 2 x 3 map -----------------------------------------------

def _anchors(h, w, shapes, step=None, offset=(0.5, 0.5), clip=False):
    sy, sx = step or (1.0 / h, 1.0 / w)
    out = []
    for i in range(h):
        for j in range(w):
            cy, cx = (i + offset[0]) * sy, (j + offset[1]) * sx
            for size, ratio in shapes:
                hw, hh = size * h / w * math.sqrt(ratio) / 2, size / math.sqrt(ratio) / 2
                out.append([cx - hw, cy - hh, cx + hw, cy + hh])
    out = np.array(out)[None]
    return np.clip(out, 0, 1) if clip else out


case("_contrib_MultiBoxPrior", [U(1, 2, 2, 3)], {"sizes": (0.5, 0.25), "ratios": (2, 0.5, 1)},
     lambda x: _anchors(2, 3, [(0.5, 2), (0.25, 2), (0.5, 0.5), (0.5, 1)]))
case("_contrib_MultiBoxPrior", [U(1, 1, 2, 3)], {"sizes": "(0.5,)", "clip": True, "steps": (0.3, 0.2),
                                                 "offsets": (0.2, 0.7)},
     lambda x: _anchors(2, 3, [(0.5, 1)], (0.3, 0.2), (0.2, 0.7), clip=True))


# -- _eye, _linspace (sym.eye / sym.linspace) --------------------------------------------------------
case("_eye", [], {"N": 3, "M": 4, "k": 1}, lambda: np.array([[0.0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]))
case("_eye", [], {"N": 2}, lambda: np.array([[1.0, 0], [0, 1]]))
case("_linspace", [], {"start": 0.0, "stop": 1.0, "num": 5}, lambda: np.array([0.0, 0.25, 0.5, 0.75, 1.0]))
case("_linspace", [], {"start": 2.0, "stop": 4.0, "num": 4, "endpoint": False}, lambda: np.array([2.0, 2.5, 3, 3.5]))


# -- CTCLoss: every alignment enumerated (C ** T paths) ---------------------------------------------

def _ctc_brute(data, label, *lengths, blank=0, pad=0, use_data_lengths=False, use_label_lengths=False):
    t_max, batch, classes = data.shape
    out = np.zeros(batch)
    for n in range(batch):
        t_len = int(lengths[0][n]) if use_data_lengths else t_max
        row = [int(v) for v in label[n]]
        if use_label_lengths:
            row = row[:int(lengths[-1][n])]
        elif pad in row:
            row = row[:row.index(pad)]
        x = data[:t_len, n]
        probs = np.exp(x - x.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        total = 0.0
        for path in itertools.product(range(classes), repeat=t_len):
            collapsed = [c for i, c in enumerate(path) if (i == 0 or c != path[i - 1]) and c != blank]
            if collapsed == row:
                total += np.prod([probs[t, c] for t, c in enumerate(path)])
        out[n] = -np.log(total) if total > 0 else 0.0
    return out


_CTC_DATA = U(4, 2, 3)
case("CTCLoss", [_CTC_DATA, np.array([[1.0, 2.0], [2.0, 0.0]])], {}, lambda d, lab: _ctc_brute(d, lab), wrt=(0,))
case("CTCLoss", [_CTC_DATA, np.array([[0.0, 0.0], [1.0, -1.0]])], {"blank_label": "last"},
     lambda d, lab: _ctc_brute(d, lab, blank=2, pad=-1), wrt=(0,))
case("CTCLoss", [_CTC_DATA, np.array([[1.0, 1.0], [2.0, 1.0]]), np.array([4.0, 3.0]), np.array([2.0, 1.0])],
     {"use_data_lengths": True, "use_label_lengths": True},
     lambda d, lab, dl, ll: _ctc_brute(d, lab, dl, ll, use_data_lengths=True, use_label_lengths=True), wrt=(0,))
case("CTCLoss", [_CTC_DATA, np.array([[1.0, 1.0], [0.0, 0.0]]), np.array([2.0, 4.0])], {"use_data_lengths": True},
     lambda d, lab, dl: _ctc_brute(d, lab, dl, use_data_lengths=True), wrt=(0,))   # item 0 cannot fit: loss 0
