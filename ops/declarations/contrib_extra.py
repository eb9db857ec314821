"""nd.contrib / sym.contrib operators beside contrib.py and detection.py: ROIAlign, box_encode
and box_decode (SSD/Faster R-CNN box regression targets), bipartite_matching, allclose, getnnz
on dense arrays and count_sketch. References follow MXNet 1.9.1's kernels (ROIAlign's sampling
grid and `aligned` half-pixel shift, box_decode's clip of the log-size deltas, the greedy
matching's order); none has a lowering, compiled graphs run them as host steps."""
from __future__ import annotations

import math

import numpy as np

from ..attrs import Attr
from ..errors import ShapeError
from ..registry import OpDef, register
from .common import like


# -- ROIAlign --------------------------------------------------------------------------------------
_ROIALIGN_ATTRS = {"pooled_size": Attr("shape"), "spatial_scale": Attr("float"), "sample_ratio": Attr("int", -1),
                   "position_sensitive": Attr("bool", False), "aligned": Attr("bool", False)}


def _bilinear_taps(y, x, h, w):
    """[(weight, yy, xx)] of one sample point, as MXNet's ROIAlign (clamped, none outside)."""
    if y < -1.0 or y > h or x < -1.0 or x > w:
        return []
    y, x = max(y, 0.0), max(x, 0.0)
    y0, x0 = int(y), int(x)
    if y0 >= h - 1:
        y0 = y1 = h - 1
        y = float(y0)
    else:
        y1 = y0 + 1
    if x0 >= w - 1:
        x0 = x1 = w - 1
        x = float(x0)
    else:
        x1 = x0 + 1
    ly, lx = y - y0, x - x0
    hy, hx = 1.0 - ly, 1.0 - lx
    return [(hy * hx, y0, x0), (hy * lx, y0, x1), (ly * hx, y1, x0), (ly * lx, y1, x1)]


def _roialign_taps(roi, h, w, pooled_size, spatial_scale, sample_ratio, aligned):
    """For each output cell (i, j): [(weight, yy, xx)] over its sample points, averaged."""
    off = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (v * spatial_scale - off for v in roi[1:5])
    rw, rh = x2 - x1, y2 - y1
    if not aligned:
        rw, rh = max(rw, 1.0), max(rh, 1.0)
    ph, pw = pooled_size
    bh, bw = rh / ph, rw / pw
    gh = sample_ratio if sample_ratio > 0 else int(math.ceil(rh / ph))
    gw = sample_ratio if sample_ratio > 0 else int(math.ceil(rw / pw))
    count = max(gh * gw, 1)
    cells = {}
    for i in range(ph):
        for j in range(pw):
            taps = []
            for iy in range(gh):
                y = y1 + i * bh + (iy + 0.5) * bh / gh
                for ix in range(gw):
                    x = x1 + j * bw + (ix + 0.5) * bw / gw
                    taps += [(wt / count, yy, xx) for wt, yy, xx in _bilinear_taps(y, x, h, w)]
            cells[i, j] = taps
    return cells


def _roialign_np(data, rois, pooled_size, spatial_scale, sample_ratio, position_sensitive, aligned):
    n, c, h, w = data.shape
    out = np.zeros((rois.shape[0], c) + tuple(pooled_size))
    d = data.astype(np.float64)
    for r, roi in enumerate(rois):
        b = int(roi[0])
        if b < 0:
            continue
        for (i, j), taps in _roialign_taps(roi, h, w, pooled_size, spatial_scale, sample_ratio, aligned).items():
            for wt, yy, xx in taps:
                out[r, :, i, j] += wt * d[b, :, yy, xx]
    return out.astype(data.dtype)


def _roialign_grad_np(data, rois, g, pooled_size, spatial_scale, sample_ratio, position_sensitive, aligned):
    n, c, h, w = data.shape
    grad = np.zeros(data.shape)
    for r, roi in enumerate(rois):
        b = int(roi[0])
        if b < 0:
            continue
        for (i, j), taps in _roialign_taps(roi, h, w, pooled_size, spatial_scale, sample_ratio, aligned).items():
            for wt, yy, xx in taps:
                grad[b, :, yy, xx] += wt * g[r, :, i, j]
    return grad.astype(data.dtype)


def _roialign_infer(data, rois, pooled_size, position_sensitive, **_):
    if data.ndim != 4 or rois.ndim != 2 or rois.shape[1] != 5:
        raise ShapeError(f"_contrib_ROIAlign: data must be (N, C, H, W) and rois (R, 5), got {data.shape} and "
                         f"{rois.shape}")
    if position_sensitive:
        raise ShapeError("_contrib_ROIAlign: position_sensitive=True is not supported")
    return like(data, (rois.shape[0], data.shape[1]) + tuple(pooled_size))


register(OpDef("_contrib_ROIAlign", infer=_roialign_infer, compute=_roialign_np, inputs=("data", "rois"),
               attrs=_ROIALIGN_ATTRS,
               gradient=lambda F, ins, outs, gs, attrs: [F._roi_align_grad(ins[0], ins[1], gs[0], **attrs), None],
               doc="Average of bilinear samples in each bin of each region (Mask R-CNN's RoIAlign)."))
register(OpDef("_roi_align_grad", infer=lambda d, r, g, **_: d, compute=_roialign_grad_np,
               inputs=("data", "rois", "ograd"), attrs=_ROIALIGN_ATTRS,
               doc="ROIAlign's backward: each bin's gradient spread over its samples' pixels."))


# -- allclose, getnnz ------------------------------------------------------------------------------

def _allclose_np(a, b, rtol, atol, equal_nan):
    ok = np.allclose(a.astype(np.float64), b.astype(np.float64), rtol=rtol, atol=atol, equal_nan=equal_nan)
    return np.array(1 if ok else 0, np.uint8)


register(OpDef("_contrib_allclose", infer=lambda a, b, **_: like(a, (), "uint8"), compute=_allclose_np,
               inputs=("a", "b"), attrs={"rtol": Attr("float", 1e-5), "atol": Attr("float", 1e-8),
                                         "equal_nan": Attr("bool", True)},
               doc="1 when |a - b| <= atol + rtol |b| everywhere, else 0 (a 0-d uint8 array, as MXNet)."))


def _getnnz_infer(x, axis):
    if axis is None:
        return like(x, (1,), "int64")
    if x.ndim != 2 or axis not in (0, 1, -1, -2):
        raise ShapeError(f"_contrib_getnnz: axis={axis} needs a 2-D array, got {x.shape}")
    return like(x, (x.shape[1 - axis % 2],), "int64")


def _getnnz_np(x, axis):
    if axis is None:
        return np.array([np.count_nonzero(x)], np.int64)
    return np.count_nonzero(x, axis=axis % 2).astype(np.int64)


register(OpDef("_contrib_getnnz", infer=_getnnz_infer, compute=_getnnz_np,
               attrs={"axis": Attr("int", None, optional=True)},
               doc="How many stored (nonzero) values, in all or per column (axis 0) / row (axis 1)."))


# -- count_sketch ----------------------------------------------------------------------------------

def _sketch_infer(data, h, s, out_dim, processing_batch_size):
    if data.ndim != 2 or h.shape != (data.shape[1],) and h.shape != (1, data.shape[1]) or h.size != s.size:
        raise ShapeError(f"_contrib_count_sketch: data (N, D) needs h and s of D values, got data {data.shape}, "
                         f"h {h.shape}, s {s.shape}")
    return like(data, (data.shape[0], out_dim))


def _sketch_np(data, h, s, out_dim, processing_batch_size):
    out = np.zeros((data.shape[0], out_dim))
    np.add.at(out.T, h.reshape(-1).astype(np.int64), (data * s.reshape(1, -1)).T)
    return out.astype(data.dtype)


def _sketch_grad(F, ins, outs, gs, attrs):
    data, h, s = ins
    picked = F.take(gs[0], F.reshape(h, shape=(-1,)), axis=1)
    return [F.broadcast_mul(picked, F.reshape(s, shape=(1, -1))), None, None]


register(OpDef("_contrib_count_sketch", infer=_sketch_infer, compute=_sketch_np, inputs=("data", "h", "s"),
               attrs={"out_dim": Attr("int"), "processing_batch_size": Attr("int", 32)}, gradient=_sketch_grad,
               doc="out[:, h[d]] += s[d] data[:, d]: a signed random projection (Charikar et al.)."))


# -- box_encode / box_decode -----------------------------------------------------------------------

def _center(boxes):
    w = boxes[..., 2] - boxes[..., 0]
    h = boxes[..., 3] - boxes[..., 1]
    return boxes[..., 0] + 0.5 * w, boxes[..., 1] + 0.5 * h, w, h


def _box_encode_infer(samples, matches, anchors, refs, means, stds):
    b, n = samples.shape
    if matches.shape != (b, n) or anchors.shape != (b, n, 4) or refs.ndim != 3 or refs.shape[2] != 4:
        raise ShapeError(f"_contrib_box_encode: samples/matches (B, N), anchors (B, N, 4), refs (B, M, 4) expected, "
                         f"got {samples.shape}, {matches.shape}, {anchors.shape}, {refs.shape}")
    return [like(anchors), like(anchors)]


def _box_encode_np(samples, matches, anchors, refs, means, stds):
    b_idx = np.arange(samples.shape[0])[:, None]
    g = refs[b_idx, matches.astype(np.int64).clip(0, refs.shape[1] - 1)].astype(np.float64)
    ax, ay, aw, ah = _center(anchors.astype(np.float64))
    gx, gy, gw, gh = _center(g)
    with np.errstate(all="ignore"):
        t = np.stack([(gx - ax) / aw, (gy - ay) / ah, np.log(gw / aw), np.log(gh / ah)], axis=-1)
    t = (t - means.reshape(1, 1, 4)) / stds.reshape(1, 1, 4)
    pos = (samples > 0.5)[..., None]
    return np.where(pos, t, 0.0).astype(anchors.dtype), np.broadcast_to(pos, t.shape).astype(anchors.dtype)


register(OpDef("_contrib_box_encode", infer=_box_encode_infer, compute=_box_encode_np,
               inputs=("samples", "matches", "anchors", "refs", "means", "stds"), num_outputs=2,
               doc="Regression targets of matched boxes relative to their anchors (corner boxes), "
                   "normalised by means and stds, and a mask of the positive samples."))

_DECODE_ATTRS = {"std0": Attr("float", 1.0), "std1": Attr("float", 1.0), "std2": Attr("float", 1.0),
                 "std3": Attr("float", 1.0), "clip": Attr("float", -1.0),
                 "format": Attr("str", "center", choices=("center", "corner"))}


def _box_decode_infer(data, anchors, **_):
    if data.ndim != 3 or data.shape[2] != 4 or anchors.ndim != 3 or anchors.shape[1:] != data.shape[1:]:
        raise ShapeError(f"_contrib_box_decode: data (B, N, 4) and anchors (1 or B, N, 4) expected, got {data.shape} "
                         f"and {anchors.shape}")
    return data


def _box_decode_np(data, anchors, std0, std1, std2, std3, clip, format):
    a = anchors.astype(np.float64)
    if format == "corner":
        ax, ay, aw, ah = _center(a)
    else:
        ax, ay, aw, ah = a[..., 0], a[..., 1], a[..., 2], a[..., 3]
    d = data.astype(np.float64)
    dw, dh = d[..., 2] * std2, d[..., 3] * std3
    if clip > 0:
        dw, dh = np.minimum(dw, clip), np.minimum(dh, clip)
    x, y = d[..., 0] * std0 * aw + ax, d[..., 1] * std1 * ah + ay
    w, h = np.exp(dw) * aw / 2, np.exp(dh) * ah / 2
    return np.stack([x - w, y - h, x + w, y + h], axis=-1).astype(data.dtype)


register(OpDef("_contrib_box_decode", infer=_box_decode_infer, compute=_box_decode_np, inputs=("data", "anchors"),
               attrs=_DECODE_ATTRS,
               doc="Boxes (corner format) from regression deltas and anchors (center or corner format)."))


# -- bipartite_matching ----------------------------------------------------------------------------

def _match_infer(x, is_ascend, threshold, topk):
    if x.ndim < 2:
        raise ShapeError(f"_contrib_bipartite_matching: data must be (..., N, M), got {x.shape}")
    return [like(x, x.shape[:-1]), like(x, x.shape[:-2] + x.shape[-1:])]


def _match_one(score, is_ascend, threshold, topk):
    n, m = score.shape
    flat = score.reshape(-1)
    order = np.argsort(flat, kind="stable") if is_ascend else np.argsort(-flat, kind="stable")
    rows, cols = np.full(n, -1.0), np.full(m, -1.0)
    found = 0
    for k in order:
        v = flat[k]
        if (v > threshold) if is_ascend else (v < threshold):
            break
        i, j = divmod(int(k), m)
        if rows[i] == -1 and cols[j] == -1:
            rows[i], cols[j] = j, i
            found += 1
            # MXNet 1.9.1 stops once the count exceeds topk: topk + 1 pairs, kept for equal results
            if 0 < topk < found:
                break
    return rows, cols


def _match_np(x, is_ascend, threshold, topk):
    lead = x.shape[:-2]
    rows = np.zeros(lead + x.shape[-2:-1])
    cols = np.zeros(lead + x.shape[-1:])
    for idx in np.ndindex(*lead):
        rows[idx], cols[idx] = _match_one(x[idx], is_ascend, threshold, topk)
    return rows.astype(x.dtype), cols.astype(x.dtype)


register(OpDef("_contrib_bipartite_matching", infer=_match_infer, compute=_match_np,
               attrs={"is_ascend": Attr("bool", False), "threshold": Attr("float"), "topk": Attr("int", -1)},
               num_outputs=2,
               doc="Greedy one-to-one matching by score: each row's matched column and each column's "
                   "matched row (-1 where none), best scores first, up to topk + 1 pairs (MXNet's count)."))


# -- MultiBoxDetection (SSD's output layer) --------------------------------------------------------
_MBD_ATTRS = {"clip": Attr("bool", True), "threshold": Attr("float", 0.01), "background_id": Attr("int", 0),
              "nms_threshold": Attr("float", 0.5), "force_suppress": Attr("bool", False),
              "variances": Attr("any", (0.1, 0.1, 0.2, 0.2)), "nms_topk": Attr("int", -1)}


def _mbd_infer(cls_prob, loc_pred, anchor, **_):
    b, c, n = cls_prob.shape if cls_prob.ndim == 3 else (None, None, None)
    if b is None or loc_pred.shape != (b, n * 4) or anchor.shape[-2:] != (n, 4):
        raise ShapeError(f"_contrib_MultiBoxDetection: cls_prob (B, classes, N), loc_pred (B, N * 4) and anchor "
                         f"(1, N, 4) expected, got {cls_prob.shape}, {loc_pred.shape}, {anchor.shape}")
    return like(cls_prob, (b, n, 6))


def _iou(a, b):
    w = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    h = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _mbd_np(cls_prob, loc_pred, anchor, clip, threshold, background_id, nms_threshold, force_suppress, variances,
            nms_topk):
    """Per anchor: the best non-background class (class 0 is the background, whatever
    background_id says: MXNet 1.9.1's CPU kernel), its box decoded from the anchor; rows sorted
    by score with those under `threshold` last as all -1; NMS marks suppressed rows' class -1."""
    b, c, n = cls_prob.shape
    vx, vy, vw, vh = variances
    a = anchor.reshape(-1, 4).astype(np.float64)
    ax, ay, aw, ah = (a[:, 0] + a[:, 2]) / 2, (a[:, 1] + a[:, 3]) / 2, a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]
    out = np.full((b, n, 6), -1.0)
    for k in range(b):
        probs = cls_prob[k, 1:].astype(np.float64)
        cls = probs.argmax(axis=0)
        score = probs[cls, np.arange(n)]
        d = loc_pred[k].reshape(n, 4).astype(np.float64)
        x, y = d[:, 0] * vx * aw + ax, d[:, 1] * vy * ah + ay
        w, h = np.exp(d[:, 2] * vw) * aw / 2, np.exp(d[:, 3] * vh) * ah / 2
        boxes = np.stack([x - w, y - h, x + w, y + h], axis=1)
        if clip:
            boxes = np.clip(boxes, 0.0, 1.0)
        valid = [i for i in np.argsort(-score, kind="stable") if score[i] >= threshold]
        rows = np.array([[cls[i], score[i], *boxes[i]] for i in valid]).reshape(-1, 6)
        if nms_topk > 0:
            rows[nms_topk:, 0] = -1
        for i in range(len(rows)):
            if rows[i, 0] < 0:
                continue
            for j in range(i + 1, len(rows)):
                if rows[j, 0] >= 0 and (force_suppress or rows[i, 0] == rows[j, 0]) \
                        and _iou(rows[i, 2:], rows[j, 2:]) > nms_threshold:
                    rows[j, 0] = -1
        out[k, :len(rows)] = rows
    return out.astype(cls_prob.dtype)


register(OpDef("_contrib_MultiBoxDetection", infer=_mbd_infer, compute=_mbd_np,
               inputs=("cls_prob", "loc_pred", "anchor"), attrs=_MBD_ATTRS,
               doc="SSD detections [class, score, xmin, ymin, xmax, ymax] per anchor: decoded, sorted by "
                   "score, thresholded and non-maximum suppressed."))


# -- MultiBoxTarget (SSD's training targets) -------------------------------------------------------
_MBT_ATTRS = {"overlap_threshold": Attr("float", 0.5), "ignore_label": Attr("float", -1.0),
              "negative_mining_ratio": Attr("float", -1.0), "negative_mining_thresh": Attr("float", 0.5),
              "minimum_negative_samples": Attr("int", 0), "variances": Attr("any", (0.1, 0.1, 0.2, 0.2))}


def _mbt_infer(anchor, label, cls_pred, **_):
    n = anchor.shape[-2] if anchor.ndim == 3 else None
    if n is None or anchor.shape[-1] != 4 or label.ndim != 3 or label.shape[2] < 5 or cls_pred.ndim != 3 \
            or cls_pred.shape[2] != n or cls_pred.shape[0] != label.shape[0]:
        raise ShapeError(f"_contrib_MultiBoxTarget: anchor (1, N, 4), label (B, M, 5+) and cls_pred (B, classes, N) "
                         f"expected, got {anchor.shape}, {label.shape}, {cls_pred.shape}")
    b = label.shape[0]
    return [like(anchor, (b, n * 4)), like(anchor, (b, n * 4)), like(anchor, (b, n))]


def _match_anchors(iou, overlap_threshold):
    """Each ground truth first takes its best free anchor (greatest IoU over all pairs first);
    then every other anchor takes its best ground truth when their IoU passes the threshold."""
    n, m = iou.shape
    match = np.full(n, -1)
    work = iou.copy()
    for _ in range(m):
        i, j = np.unravel_index(np.argmax(work), work.shape)
        if work[i, j] <= 1e-6:
            break
        match[i] = j
        work[i, :] = -1.0
        work[:, j] = -1.0
    for i in range(n):
        if match[i] < 0 and m:
            j = int(np.argmax(iou[i]))
            if iou[i, j] > overlap_threshold:
                match[i] = j
    return match


def _mbt_np(anchor, label, cls_pred, overlap_threshold, ignore_label, negative_mining_ratio, negative_mining_thresh,
            minimum_negative_samples, variances):
    a = anchor.reshape(-1, 4).astype(np.float64)
    n = a.shape[0]
    b = label.shape[0]
    ax, ay, aw, ah = (a[:, 0] + a[:, 2]) / 2, (a[:, 1] + a[:, 3]) / 2, a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]
    loc_t, loc_m, cls_t = np.zeros((b, n, 4)), np.zeros((b, n, 4)), np.zeros((b, n))
    for k in range(b):
        gts = [g for g in label[k].astype(np.float64) if g[0] >= 0]
        gt = np.array(gts).reshape(-1, label.shape[2])
        iou = np.array([[_iou(a[i], g[1:5]) for g in gt] for i in range(n)]).reshape(n, len(gt))
        match = _match_anchors(iou, overlap_threshold)
        pos = match >= 0
        for i in np.flatnonzero(pos):
            g = gt[match[i], 1:5]
            gx, gy, gw, gh = (g[0] + g[2]) / 2, (g[1] + g[3]) / 2, g[2] - g[0], g[3] - g[1]
            loc_t[k, i] = [(gx - ax[i]) / aw[i] / variances[0], (gy - ay[i]) / ah[i] / variances[1],
                           np.log(gw / aw[i]) / variances[2], np.log(gh / ah[i]) / variances[3]]
            loc_m[k, i] = 1.0
            cls_t[k, i] = gt[match[i], 0] + 1
        if negative_mining_ratio > 0:
            # the hardest negatives: lowest background probability (softmax of cls_pred) among
            # anchors whose best IoU stays under negative_mining_thresh; the rest are ignored
            logits = cls_pred[k].astype(np.float64)
            e = np.exp(logits - logits.max(axis=0))
            background = e[0] / e.sum(axis=0)
            best = iou.max(axis=1) if len(gt) else np.zeros(n)
            candidates = [i for i in np.argsort(background, kind="stable") if not pos[i]
                          and best[i] < negative_mining_thresh]
            count = max(int(negative_mining_ratio * pos.sum()), minimum_negative_samples)
            cls_t[k, ~pos] = ignore_label
            cls_t[k, candidates[:count]] = 0.0
    dt = anchor.dtype
    return loc_t.reshape(b, -1).astype(dt), loc_m.reshape(b, -1).astype(dt), cls_t.astype(dt)


register(OpDef("_contrib_MultiBoxTarget", infer=_mbt_infer, compute=_mbt_np, inputs=("anchor", "label", "cls_pred"),
               attrs=_MBT_ATTRS, num_outputs=3,
               doc="SSD training targets: anchors matched to ground truth (best anchor per object, then IoU "
                   "over overlap_threshold) give box offsets, a mask and class + 1; optional hard negative "
                   "mining labels the rest background or ignore_label."))
