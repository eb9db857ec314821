"""MXNet's spatial operators on NCHW data that the conv/pool families do not cover: LRN, Crop,
im2col/col2im, GridGenerator, BilinearSampler, SpatialTransformer and ROIPooling.

Each forward is a numpy reference written with MXNet 1.9.1's conventions (LRN's window over
channels, Crop's offsets, im2col's column order, the sampler's [-1, 1] grid with zero padding,
ROIPooling's rounded bins); gradients are adjoint operators (col2im for im2col, Pad for Crop)
or private `_*_grad` operators with numpy references. None has a lowering: compiled graphs run
them as host steps."""
from __future__ import annotations

import math

import numpy as np

from ..attrs import Attr
from ..errors import ShapeError
from .. import layout as L
from ..registry import Movement, OpDef, register
from .common import like


def _need_4d(op, t, what="data"):
    if t.ndim != 4:
        raise ShapeError(f"{op}: {what} must be 4-D (N, C, H, W), got {t.shape}")


# -- LRN -------------------------------------------------------------------------------------------
_LRN_ATTRS = {"alpha": Attr("float", 1e-4), "beta": Attr("float", 0.75), "knorm": Attr("float", 2.0),
              "nsize": Attr("int")}


def _lrn_scale(x, alpha, knorm, nsize):
    """knorm + alpha / nsize * (sum of squares over the nsize channels centred on each)."""
    sq = np.square(x.astype(np.float64))
    half = nsize // 2
    padded = np.pad(sq, [(0, 0), (half, half)] + [(0, 0)] * (x.ndim - 2))
    window = sum(padded[:, i:i + x.shape[1]] for i in range(nsize))
    return knorm + alpha / nsize * window


def _lrn_np(x, alpha, beta, knorm, nsize):
    return (x / _lrn_scale(x, alpha, knorm, nsize) ** beta).astype(x.dtype)


def _lrn_grad_np(x, g, alpha, beta, knorm, nsize):
    xd, gd = x.astype(np.float64), g.astype(np.float64)
    s = _lrn_scale(x, alpha, knorm, nsize)
    # d out_c / d x_k = [c == k] s_c^-beta - 2 beta alpha / nsize x_c x_k s_c^(-beta-1) for k near c
    t = gd * xd * s ** (-beta - 1.0)
    half = nsize // 2
    padded = np.pad(t, [(0, 0), (half, half)] + [(0, 0)] * (x.ndim - 2))
    window = sum(padded[:, i:i + x.shape[1]] for i in range(nsize))
    return (gd * s ** (-beta) - 2.0 * beta * alpha / nsize * xd * window).astype(x.dtype)


def _lrn_infer(x, nsize, **_):
    if x.ndim < 2 or nsize < 1 or nsize % 2 == 0:
        raise ShapeError(f"LRN: data must have a channel axis 1 and nsize an odd window, got {x.shape} and "
                         f"nsize={nsize}")
    return x


register(OpDef("LRN", infer=_lrn_infer, compute=_lrn_np, attrs=_LRN_ATTRS,
               gradient=lambda F, ins, outs, gs, attrs: [F._lrn_grad(ins[0], gs[0], **attrs)],
               doc="Local response normalisation across channels (AlexNet's): "
                   "x / (knorm + alpha/nsize sum_window x^2)^beta."))
register(OpDef("_lrn_grad", infer=lambda x, g, **a: x, compute=_lrn_grad_np, inputs=("data", "ograd"),
               attrs=_LRN_ATTRS, doc="LRN's backward: the head gradient times LRN's Jacobian."))


# -- Crop ------------------------------------------------------------------------------------------
_CROP_ATTRS = {"num_args": Attr("int", 1), "offset": Attr("shape", (0, 0)), "h_w": Attr("shape", (0, 0)),
               "center_crop": Attr("bool", False)}


def _crop_box(shape, like_shape, offset, h_w, center_crop):
    h, w = (like_shape[2], like_shape[3]) if like_shape is not None else h_w
    H, W = shape[2], shape[3]
    y, x = ((H - h) // 2, (W - w) // 2) if center_crop else offset
    if h < 1 or w < 1 or y < 0 or x < 0 or y + h > H or x + w > W:
        raise ShapeError(f"Crop: a {h}x{w} window at offset ({y}, {x}) does not fit data of shape {tuple(shape)}")
    return y, x, h, w


def _crop_inputs(attrs):
    return ("data", "crop_like") if attrs["num_args"] == 2 else ("data",)


def _crop_infer(x, *like_t, num_args, offset, h_w, center_crop):
    _need_4d("Crop", x)
    _, _, h, w = _crop_box(x.shape, like_t[0].shape if like_t else None, offset, h_w, center_crop)
    return like(x, x.shape[:2] + (h, w))


def _crop_np(x, *like_a, num_args, offset, h_w, center_crop):
    y, x0, h, w = _crop_box(x.shape, like_a[0].shape if like_a else None, offset, h_w, center_crop)
    return np.ascontiguousarray(x[:, :, y:y + h, x0:x0 + w])


def _crop_grad(F, ins, outs, gs, attrs):
    x = ins[0]
    y, x0, h, w = _crop_box(x.shape, ins[1].shape if len(ins) > 1 else None, attrs["offset"], attrs["h_w"],
                            attrs["center_crop"])
    pad = (0, 0, 0, 0, y, x.shape[2] - y - h, x0, x.shape[3] - x0 - w)
    return [F.Pad(gs[0], mode="constant", pad_width=pad)] + [None] * (len(ins) - 1)


def _crop_pieces(in_types, out_types, attrs):
    """The window as one strided copy of the data (crop_like gives only a shape)."""
    shape = in_types[0].shape
    y, x0, h, w = _crop_box(shape, in_types[1].shape if len(in_types) > 1 else None, attrs["offset"],
                            attrs["h_w"], attrs["center_crop"])
    return [L.gather(L.probe(shape)[:, :, y:y + h, x0:x0 + w], out_types[0].shape)]


register(OpDef("Crop", infer=_crop_infer, compute=_crop_np, inputs=_crop_inputs, attrs=_CROP_ATTRS,
               gradient=_crop_grad, lowering=Movement(_crop_pieces),
               doc="A window of NCHW data: size h_w or crop_like's, at `offset` (y, x) or centred."))


# -- im2col / col2im -------------------------------------------------------------------------------
_I2C_ATTRS = {"kernel": Attr("shape"), "stride": Attr("shape", ()), "dilate": Attr("shape", ()),
              "pad": Attr("shape", ())}


def _geometry(kernel, stride, dilate, pad):
    k = tuple(kernel)
    n = len(k)
    return k, tuple(stride) or (1,) * n, tuple(dilate) or (1,) * n, tuple(pad) or (0,) * n


def _out_size(size, k, s, d, p):
    return (size + 2 * p - (d * (k - 1) + 1)) // s + 1


def _patch_index(spatial, kernel, stride, dilate, pad):
    """For each (kernel offset, output position): the input position it reads (padded coords)."""
    k, s, d, p = _geometry(kernel, stride, dilate, pad)
    outs = [_out_size(n, *a) for n, a in zip(spatial, zip(k, s, d, p))]
    return k, s, d, p, outs


def _im2col_infer(x, kernel, stride, dilate, pad):
    k, s, d, p, outs = _patch_index(x.shape[2:], kernel, stride, dilate, pad)
    if x.ndim != 2 + len(k) or min(outs, default=1) < 1:
        raise ShapeError(f"im2col: data {x.shape} does not fit kernel={kernel}, stride={stride}, dilate={dilate}, "
                         f"pad={pad}")
    return like(x, (x.shape[0], x.shape[1] * math.prod(k), math.prod(outs)))


def _im2col_np(x, kernel, stride, dilate, pad):
    k, s, d, p, outs = _patch_index(x.shape[2:], kernel, stride, dilate, pad)
    xp = np.pad(x, [(0, 0), (0, 0)] + [(q, q) for q in p])
    cols = []
    for offs in np.ndindex(*k):
        sl = tuple(slice(o * dd, o * dd + (n - 1) * ss + 1, ss) for o, dd, ss, n in zip(offs, d, s, outs))
        cols.append(xp[(slice(None), slice(None)) + sl].reshape(x.shape[0], x.shape[1], -1))
    # (N, C, K, L) -> (N, C * K, L): channel-major, then kernel offsets in row-major order
    return np.ascontiguousarray(np.stack(cols, axis=2).reshape(x.shape[0], -1, math.prod(outs)))


def _col2im_infer(c, output_size, kernel, stride, dilate, pad):
    k, s, d, p, outs = _patch_index(tuple(output_size), kernel, stride, dilate, pad)
    kk = math.prod(k)
    if c.ndim != 3 or c.shape[1] % kk or c.shape[2] != math.prod(outs):
        raise ShapeError(f"col2im: data {c.shape} must be (N, C * {kk}, {math.prod(outs)}) for output_size="
                         f"{tuple(output_size)} and kernel={kernel}")
    return like(c, (c.shape[0], c.shape[1] // kk) + tuple(output_size))


def _col2im_np(c, output_size, kernel, stride, dilate, pad):
    k, s, d, p, outs = _patch_index(tuple(output_size), kernel, stride, dilate, pad)
    n, ck, _ = c.shape
    ch = ck // math.prod(k)
    out = np.zeros((n, ch) + tuple(o + 2 * q for o, q in zip(output_size, p)), c.dtype)
    blocks = c.reshape(n, ch, math.prod(k), *outs)
    for i, offs in enumerate(np.ndindex(*k)):
        sl = tuple(slice(o * dd, o * dd + (m - 1) * ss + 1, ss) for o, dd, ss, m in zip(offs, d, s, outs))
        out[(slice(None), slice(None)) + sl] += blocks[:, :, i]
    inner = tuple(slice(q, q + o) for q, o in zip(p, output_size))
    return np.ascontiguousarray(out[(slice(None), slice(None)) + inner])


register(OpDef("im2col", infer=_im2col_infer, compute=_im2col_np, attrs=_I2C_ATTRS,
               gradient=lambda F, ins, outs, gs, attrs: [F.col2im(gs[0], output_size=ins[0].shape[2:], **attrs)],
               doc="Sliding patches as columns: (N, C, H, W) -> (N, C * prod(kernel), output positions)."))
register(OpDef("col2im", infer=_col2im_infer, compute=_col2im_np,
               attrs={"output_size": Attr("shape"), **_I2C_ATTRS},
               gradient=lambda F, ins, outs, gs, attrs: [F.im2col(gs[0], **{k: v for k, v in attrs.items()
                                                                             if k != "output_size"})],
               doc="The adjoint of im2col: columns summed back into an image of output_size."))


# -- GridGenerator ---------------------------------------------------------------------------------
_GRID_ATTRS = {"transform_type": Attr("str", "affine", choices=("affine", "warp")),
               "target_shape": Attr("shape", (0, 0))}


def _affine_base(h, w):
    """(3, h * w): normalised target coordinates x, y in [-1, 1] (row-major) and ones."""
    ys, xs = np.meshgrid(np.linspace(-1.0, 1.0, h), np.linspace(-1.0, 1.0, w), indexing="ij")
    return np.stack([xs.reshape(-1), ys.reshape(-1), np.ones(h * w)])


def _grid_infer(x, transform_type, target_shape):
    if transform_type == "affine":
        if x.ndim != 2 or x.shape[1] != 6 or min(target_shape) < 1:
            raise ShapeError(f"GridGenerator: affine needs data (N, 6) and a target_shape, got {x.shape} and "
                             f"{target_shape}")
        return like(x, (x.shape[0], 2) + tuple(target_shape))
    if x.ndim != 4 or x.shape[1] != 2:
        raise ShapeError(f"GridGenerator: warp needs a flow field (N, 2, H, W), got {x.shape}")
    return x


def _grid_np(x, transform_type, target_shape):
    if transform_type == "affine":
        h, w = target_shape
        out = x.reshape(-1, 2, 3).astype(np.float64) @ _affine_base(h, w)
        return out.reshape(x.shape[0], 2, h, w).astype(x.dtype)
    n, _, h, w = x.shape
    ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    gx = (x[:, 0] + xs) / ((w - 1) / 2.0) - 1.0
    gy = (x[:, 1] + ys) / ((h - 1) / 2.0) - 1.0
    return np.stack([gx, gy], axis=1).astype(x.dtype)


def _grid_grad_np(g, transform_type, target_shape):
    if transform_type == "affine":
        h, w = g.shape[2:]
        theta = g.reshape(g.shape[0], 2, h * w).astype(np.float64) @ _affine_base(h, w).T
        return theta.reshape(-1, 6).astype(g.dtype)
    h, w = g.shape[2:]
    return np.stack([g[:, 0] / ((w - 1) / 2.0), g[:, 1] / ((h - 1) / 2.0)], axis=1).astype(g.dtype)


def _grid_grad_infer(g, transform_type, target_shape):
    return like(g, (g.shape[0], 6)) if transform_type == "affine" else g


register(OpDef("GridGenerator", infer=_grid_infer, compute=_grid_np, attrs=_GRID_ATTRS,
               gradient=lambda F, ins, outs, gs, attrs: [F._grid_generator_grad(gs[0], **attrs)],
               doc="Sampling grids in [-1, 1] for BilinearSampler: an affine map of the target's coordinates, "
                   "or pixel coordinates plus a flow field (warp)."))
register(OpDef("_grid_generator_grad", infer=_grid_grad_infer, compute=_grid_grad_np, inputs=("ograd",),
               attrs=_GRID_ATTRS, doc="GridGenerator's backward (it is linear in its input)."))


# -- BilinearSampler -------------------------------------------------------------------------------

def _corners(grid, h, w):
    """Source positions of a grid (N, 2, oh, ow) in pixels, their top-left corners and weights."""
    x = (grid[:, 0].astype(np.float64) + 1.0) * (w - 1) / 2.0
    y = (grid[:, 1].astype(np.float64) + 1.0) * (h - 1) / 2.0
    x0, y0 = np.floor(x), np.floor(y)
    return x, y, x0.astype(np.int64), y0.astype(np.int64), x - x0, y - y0


def _gather(data, yy, xx):
    """data[n, :, yy, xx] with zeros outside the image: (N, C, oh, ow)."""
    n, c, h, w = data.shape
    inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
    batch = np.arange(n)[:, None, None]
    vals = data[batch, :, np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)]   # (N, oh, ow, C)
    return np.moveaxis(vals * inside[..., None], -1, 1), inside


def _sampler_np(data, grid, cudnn_off=None):
    h, w = data.shape[2:]
    _, _, x0, y0, fx, fy = _corners(grid, h, w)
    d = data.astype(np.float64)
    out = 0.0
    for dy, dx, wt in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        vals, _ = _gather(d, y0 + dy, x0 + dx)
        out = out + vals * wt[:, None]
    return out.astype(data.dtype)


def _sampler_grad_np(data, grid, g, cudnn_off=None):
    n, c, h, w = data.shape
    _, _, x0, y0, fx, fy = _corners(grid, h, w)
    d, gd = data.astype(np.float64), g.astype(np.float64)
    ddata = np.zeros_like(d)
    dfx = np.zeros(fx.shape)
    dfy = np.zeros(fy.shape)
    batch = np.arange(n)[:, None, None]
    for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):
        wy = fy if dy else 1 - fy
        wx = fx if dx else 1 - fx
        yy, xx = y0 + dy, x0 + dx
        vals, inside = _gather(d, yy, xx)
        contrib = np.moveaxis(gd * (wy * wx)[:, None] * inside[:, None], 1, -1)   # (N, oh, ow, C)
        np.add.at(ddata, (batch, slice(None), np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)), contrib)
        gv = (gd * vals).sum(axis=1)
        dfx += gv * wy * (1 if dx else -1)
        dfy += gv * wx * (1 if dy else -1)
    dgrid = np.stack([dfx * (w - 1) / 2.0, dfy * (h - 1) / 2.0], axis=1)
    return ddata.astype(data.dtype), dgrid.astype(grid.dtype)


def _sampler_infer(data, grid, cudnn_off=None):
    _need_4d("BilinearSampler", data)
    if grid.ndim != 4 or grid.shape[1] != 2 or grid.shape[0] != data.shape[0]:
        raise ShapeError(f"BilinearSampler: grid must be (N, 2, H', W') for data {data.shape}, got {grid.shape}")
    return like(data, data.shape[:2] + grid.shape[2:])


register(OpDef("BilinearSampler", infer=_sampler_infer, compute=_sampler_np, inputs=("data", "grid"),
               attrs={"cudnn_off": Attr("bool", None, optional=True)},
               gradient=lambda F, ins, outs, gs, attrs: list(F._bilinear_sampler_grad(ins[0], ins[1], gs[0])),
               doc="data sampled bilinearly at grid positions in [-1, 1] (x, y), zero outside."))
register(OpDef("_bilinear_sampler_grad", infer=lambda d, g, o, **_: [d, g], compute=_sampler_grad_np,
               inputs=("data", "grid", "ograd"), attrs={"cudnn_off": Attr("bool", None, optional=True)},
               num_outputs=2, doc="BilinearSampler's backward: gradients of data and grid."))


# -- SpatialTransformer ----------------------------------------------------------------------------
_ST_ATTRS = {"target_shape": Attr("shape", (0, 0)), "transform_type": Attr("str", "affine", choices=("affine",)),
             "sampler_type": Attr("str", "bilinear", choices=("bilinear",)),
             "cudnn_off": Attr("bool", None, optional=True)}


def _st_infer(data, loc, target_shape, **_):
    _need_4d("SpatialTransformer", data)
    if loc.shape != (data.shape[0], 6):
        raise ShapeError(f"SpatialTransformer: loc must be (N, 6) affine parameters for data {data.shape}, got "
                         f"{loc.shape}")
    return like(data, data.shape[:2] + tuple(target_shape))


def _st_np(data, loc, target_shape, **_):
    return _sampler_np(data, _grid_np(loc, "affine", target_shape))


def _st_grad(F, ins, outs, gs, attrs):
    grid = F.GridGenerator(ins[1], transform_type="affine", target_shape=attrs["target_shape"])
    ddata, dgrid = F._bilinear_sampler_grad(ins[0], grid, gs[0])
    return [ddata, F._grid_generator_grad(dgrid, transform_type="affine", target_shape=attrs["target_shape"])]


register(OpDef("SpatialTransformer", infer=_st_infer, compute=_st_np, inputs=("data", "loc"), attrs=_ST_ATTRS,
               gradient=_st_grad,
               doc="BilinearSampler(data, GridGenerator(loc, affine, target_shape)) (Jaderberg et al.)."))


# -- ROIPooling ------------------------------------------------------------------------------------

def _c_round(v):
    return math.floor(v + 0.5) if v >= 0 else math.ceil(v - 0.5)


def _roi_bins(roi, h, w, pooled_size, spatial_scale):
    """[(batch, hstart, hend, wstart, wend) per output cell], MXNet's rounded, clipped bins."""
    b = int(roi[0])
    x1, y1, x2, y2 = (_c_round(v * spatial_scale) for v in roi[1:5])
    rh, rw = max(y2 - y1 + 1, 1), max(x2 - x1 + 1, 1)
    ph, pw = pooled_size
    bh, bw = rh / ph, rw / pw
    for i in range(ph):
        for j in range(pw):
            hs = min(max(math.floor(i * bh) + y1, 0), h)
            he = min(max(math.ceil((i + 1) * bh) + y1, 0), h)
            ws = min(max(math.floor(j * bw) + x1, 0), w)
            we = min(max(math.ceil((j + 1) * bw) + x1, 0), w)
            yield i, j, b, hs, he, ws, we


def _roi_np(data, rois, pooled_size, spatial_scale):
    n, c, h, w = data.shape
    out = np.zeros((rois.shape[0], c) + tuple(pooled_size), data.dtype)
    for r, roi in enumerate(rois):
        for i, j, b, hs, he, ws, we in _roi_bins(roi, h, w, pooled_size, spatial_scale):
            if he > hs and we > ws:
                out[r, :, i, j] = data[b, :, hs:he, ws:we].max(axis=(1, 2))
    return out


def _roi_grad_np(data, rois, g, pooled_size, spatial_scale):
    n, c, h, w = data.shape
    grad = np.zeros_like(data)
    for r, roi in enumerate(rois):
        for i, j, b, hs, he, ws, we in _roi_bins(roi, h, w, pooled_size, spatial_scale):
            if he <= hs or we <= ws:
                continue
            window = data[b, :, hs:he, ws:we].reshape(c, -1)
            arg = window.argmax(axis=1)          # the first maximum, as MXNet's kernel keeps
            yy, xx = hs + arg // (we - ws), ws + arg % (we - ws)
            np.add.at(grad, (b, np.arange(c), yy, xx), g[r, :, i, j])
    return grad


def _roi_infer(data, rois, pooled_size, spatial_scale):
    _need_4d("ROIPooling", data)
    if rois.ndim != 2 or rois.shape[1] != 5 or len(pooled_size) != 2:
        raise ShapeError(f"ROIPooling: rois must be (R, 5) [batch, x1, y1, x2, y2] and pooled_size two sizes, "
                         f"got {rois.shape} and {pooled_size}")
    return like(data, (rois.shape[0], data.shape[1]) + tuple(pooled_size))


_ROI_ATTRS = {"pooled_size": Attr("shape"), "spatial_scale": Attr("float")}
register(OpDef("ROIPooling", infer=_roi_infer, compute=_roi_np, inputs=("data", "rois"), attrs=_ROI_ATTRS,
               gradient=lambda F, ins, outs, gs, attrs: [F._roi_pooling_grad(ins[0], ins[1], gs[0], **attrs), None],
               doc="Max pooling of each region of interest into pooled_size bins (Fast R-CNN)."))
register(OpDef("_roi_pooling_grad", infer=lambda d, r, g, **_: d, compute=_roi_grad_np,
               inputs=("data", "rois", "ograd"), attrs=_ROI_ATTRS,
               doc="ROIPooling's backward: each bin's gradient to the position of its maximum."))


# -- Correlation (FlowNet's correlation layer) -----------------------------------------------------
_CORR_ATTRS = {"kernel_size": Attr("int", 1), "max_displacement": Attr("int", 1), "stride1": Attr("int", 1),
               "stride2": Attr("int", 1), "pad_size": Attr("int", 0), "is_multiply": Attr("bool", True)}


def _corr_geometry(shape, kernel_size, max_displacement, stride1, stride2, pad_size):
    """(grid radius, grid width, output height, output width), MXNet's correlation-inl.h."""
    radius = max_displacement // stride2
    width = 2 * radius + 1
    border = max_displacement + (kernel_size - 1) // 2
    ph, pw = shape[2] + 2 * pad_size, shape[3] + 2 * pad_size
    oh = int(math.ceil((ph - 2 * border) / stride1))
    ow = int(math.ceil((pw - 2 * border) / stride1))
    return radius, width, oh, ow


def _corr_infer(a, b, **attrs):
    _need_4d("Correlation", a, "data1")
    if b.shape != a.shape:
        raise ShapeError(f"Correlation: data1 {a.shape} and data2 {b.shape} must have one shape")
    _, width, oh, ow = _corr_geometry(a.shape, **{k: v for k, v in attrs.items() if k != "is_multiply"})
    if oh < 1 or ow < 1:
        raise ShapeError(f"Correlation: data {a.shape} is too small for max_displacement={attrs['max_displacement']}"
                         f" and kernel_size={attrs['kernel_size']} (pad_size={attrs['pad_size']})")
    return like(a, (a.shape[0], width * width, oh, ow))


def _corr_windows(shape, kernel_size, max_displacement, stride1, stride2, pad_size):
    """Yield (output channel, i, j, window of data1, window of data2) as padded-array slices."""
    radius, width, oh, ow = _corr_geometry(shape, kernel_size, max_displacement, stride1, stride2, pad_size)
    for tc in range(width * width):
        dx, dy = (tc % width - radius) * stride2, (tc // width - radius) * stride2
        for i in range(oh):
            y1 = i * stride1 + max_displacement
            for j in range(ow):
                x1 = j * stride1 + max_displacement
                yield (tc, i, j, (slice(y1, y1 + kernel_size), slice(x1, x1 + kernel_size)),
                       (slice(y1 + dy, y1 + dy + kernel_size), slice(x1 + dx, x1 + dx + kernel_size)))


def _pad_hw(x, p):
    return np.pad(x.astype(np.float64), ((0, 0), (0, 0), (p, p), (p, p)))


def _corr_np(a, b, kernel_size, max_displacement, stride1, stride2, pad_size, is_multiply):
    geo = (kernel_size, max_displacement, stride1, stride2, pad_size)
    pa, pb = _pad_hw(a, pad_size), _pad_hw(b, pad_size)
    _, width, oh, ow = _corr_geometry(a.shape, *geo)
    out = np.zeros((a.shape[0], width * width, oh, ow))
    norm = kernel_size * kernel_size * a.shape[1]
    for tc, i, j, w1, w2 in _corr_windows(a.shape, *geo):
        p, q = pa[(slice(None), slice(None)) + w1], pb[(slice(None), slice(None)) + w2]
        out[:, tc, i, j] = (p * q if is_multiply else np.abs(p - q)).sum(axis=(1, 2, 3)) / norm
    return out.astype(a.dtype)


def _corr_grad_np(a, b, g, kernel_size, max_displacement, stride1, stride2, pad_size, is_multiply):
    geo = (kernel_size, max_displacement, stride1, stride2, pad_size)
    pa, pb = _pad_hw(a, pad_size), _pad_hw(b, pad_size)
    ga, gb = np.zeros_like(pa), np.zeros_like(pb)
    norm = kernel_size * kernel_size * a.shape[1]
    for tc, i, j, w1, w2 in _corr_windows(a.shape, *geo):
        s1, s2 = (slice(None), slice(None)) + w1, (slice(None), slice(None)) + w2
        scale = g[:, tc, i, j].astype(np.float64)[:, None, None, None] / norm
        if is_multiply:
            ga[s1] += scale * pb[s2]
            gb[s2] += scale * pa[s1]
        else:
            sign = np.sign(pa[s1] - pb[s2])
            ga[s1] += scale * sign
            gb[s2] -= scale * sign
    inner = (slice(None), slice(None), slice(pad_size, pad_size + a.shape[2]), slice(pad_size, pad_size + a.shape[3]))
    return ga[inner].astype(a.dtype), gb[inner].astype(b.dtype)


register(OpDef("Correlation", infer=_corr_infer, compute=_corr_np, inputs=("data1", "data2"), attrs=_CORR_ATTRS,
               gradient=lambda F, ins, outs, gs, attrs: list(F._correlation_grad(ins[0], ins[1], gs[0], **attrs)),
               doc="FlowNet's correlation: for each displacement within max_displacement, the mean product "
                   "(or absolute difference) of kernel_size patches of data1 and the displaced data2."))
register(OpDef("_correlation_grad", infer=lambda a, b, g, **_: [a, b], compute=_corr_grad_np,
               inputs=("data1", "data2", "ograd"), attrs=_CORR_ATTRS, num_outputs=2,
               doc="Correlation's backward: gradients of data1 and data2."))
