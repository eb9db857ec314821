"""MXNet's image operators (`_image_*`, called as nd.image.X / sym.image.X / F.image.X) on
images laid out HWC, or NHWC batches: to_tensor, normalize, flips, crop, resize, lighting and
the random colour changes. Formulas and integer handling are MXNet 1.9.1's: colour results on
integer images are clipped to the type's range and truncated; random_hue rotates the hue of
HLS space by alpha * 360 degrees; random_saturation blends each pixel with 0.114 * its blue
value, which is what MXNet 1.9.1's kernel computes (its gray sum keeps only the last term),
so that pipelines give MXNet's numbers. The random ones draw from the run's generator."""
from __future__ import annotations

import numpy as np

from ..attrs import Attr
from ..errors import ShapeError, OpAttributeError
from ..registry import OpDef, register
from .common import like

_GRAY = np.array([0.299, 0.587, 0.114])
_EIGVAL = np.array([55.46, 4.794, 1.148])
_EIGVEC = np.array([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]])


def _image(op, t, channels3=False):
    if t.ndim not in (3, 4) or (channels3 and t.shape[-1] != 3):
        want = "(H, W, 3) or (N, H, W, 3) RGB" if channels3 else "(H, W, C) or (N, H, W, C)"
        raise ShapeError(f"{op}: expected an image {want}, got shape {t.shape}")


def _saturate(out, x):
    """Back to the input's dtype; integer images are clipped to their range and truncated."""
    if np.issubdtype(x.dtype, np.integer):
        info = np.iinfo(x.dtype)
        out = np.clip(out, info.min, info.max)
    return out.astype(x.dtype)


# -- to_tensor, normalize --------------------------------------------------------------------------

def _to_tensor_infer(x):
    _image("_image_to_tensor", x)
    shape = (x.shape[2],) + x.shape[:2] if x.ndim == 3 else (x.shape[0], x.shape[3]) + x.shape[1:3]
    return like(x, shape, "float32")


def _to_tensor_np(x):
    axes = (2, 0, 1) if x.ndim == 3 else (0, 3, 1, 2)
    return np.ascontiguousarray(x.transpose(axes)).astype(np.float32) / np.float32(255.0)


register(OpDef("_image_to_tensor", infer=_to_tensor_infer, compute=_to_tensor_np,
               doc="HWC (NHWC) in [0, 255] -> float32 CHW (NCHW) in [0, 1]."))

_NORM_ATTRS = {"mean": Attr("any", (0.0, 0.0, 0.0, 0.0)), "std": Attr("any", (1.0, 1.0, 1.0, 1.0))}


def _per_channel(values, channels, what):
    v = np.asarray(values if isinstance(values, (tuple, list)) else (values,), np.float64).reshape(-1)
    if v.size == 1:
        return np.full(channels, v[0])
    if v.size < channels:
        raise ShapeError(f"_image_normalize: {what} has {v.size} values for {channels} channels")
    return v[:channels]


def _norm_infer(x, mean, std):
    if x.ndim not in (3, 4):
        raise ShapeError(f"_image_normalize: expected a tensor (C, H, W) or (N, C, H, W), got {x.shape}")
    _per_channel(mean, x.shape[-3], "mean")
    _per_channel(std, x.shape[-3], "std")
    return x


def _norm_np(x, mean, std):
    c = x.shape[-3]
    m = _per_channel(mean, c, "mean").reshape(-1, 1, 1)
    s = _per_channel(std, c, "std").reshape(-1, 1, 1)
    return ((x - m) / s).astype(x.dtype)


def _norm_grad(F, ins, outs, gs, attrs):
    return [F._image_normalize(gs[0], mean=0.0, std=attrs["std"])]


register(OpDef("_image_normalize", infer=_norm_infer, compute=_norm_np, attrs=_NORM_ATTRS, gradient=_norm_grad,
               doc="(x[c] - mean[c]) / std[c] over a CHW or NCHW tensor (one value: every channel)."))


# -- flips and crop -------------------------------------------------------------------------------

def _flip(axis_from_end):
    def infer(x):
        _image("_image_flip", x)
        return x

    def compute(x):
        return np.ascontiguousarray(np.flip(x, axis=x.ndim - axis_from_end))
    return infer, compute


for _name, _axis in (("flip_left_right", 2), ("flip_top_bottom", 3)):
    _infer, _compute = _flip(_axis)
    register(OpDef("_image_" + _name, infer=_infer, compute=_compute,
                   gradient=(lambda n: lambda F, ins, outs, gs, attrs: [getattr(F, "_image_" + n)(gs[0])])(_name),
                   doc=f"Mirror an HWC/NHWC image ({_name.replace('_', ' ')})."))

    def _random_flip(x, rng=None, _compute=_compute):
        return _compute(x) if rng.random() < 0.5 else x.copy()
    register(OpDef("_image_random_" + _name, infer=_infer, compute=_random_flip, random=True,
                   doc=f"{_name.replace('_', ' ')} with probability 1/2."))

_CROP_ATTRS = {"x": Attr("int"), "y": Attr("int"), "width": Attr("int"), "height": Attr("int")}


def _crop_check(shape, x, y, width, height):
    h, w = (shape[0], shape[1]) if len(shape) == 3 else (shape[1], shape[2])
    if x < 0 or y < 0 or width < 1 or height < 1 or x + width > w or y + height > h:
        raise ShapeError(f"_image_crop: a {width}x{height} window at x={x}, y={y} does not fit an image of "
                         f"shape {shape}")


def _crop_infer(t, x, y, width, height):
    _image("_image_crop", t)
    _crop_check(t.shape, x, y, width, height)
    return like(t, (height, width, t.shape[2]) if t.ndim == 3 else (t.shape[0], height, width, t.shape[3]))


def _crop_np(a, x, y, width, height):
    window = (slice(y, y + height), slice(x, x + width))
    return np.ascontiguousarray(a[window] if a.ndim == 3 else a[(slice(None),) + window])


def _crop_grad(F, ins, outs, gs, attrs):
    t = ins[0]
    h, w = t.shape[-3], t.shape[-2]
    x, y, cw, ch = attrs["x"], attrs["y"], attrs["width"], attrs["height"]
    g = gs[0] if t.ndim == 4 else F.expand_dims(gs[0], axis=0)
    # Pad works on NCHW: move the channel axis next to the batch, pad H and W, move it back
    padded = F.Pad(F.transpose(g, axes=(0, 3, 1, 2)), mode="constant",
                   pad_width=(0, 0, 0, 0, y, h - y - ch, x, w - x - cw))
    back = F.transpose(padded, axes=(0, 2, 3, 1))
    return [back if t.ndim == 4 else F.reshape(back, shape=t.shape)]


register(OpDef("_image_crop", infer=_crop_infer, compute=_crop_np, attrs=_CROP_ATTRS, gradient=_crop_grad,
               doc="The width x height window at (x, y) of an HWC/NHWC image."))


# -- resize ----------------------------------------------------------------------------------------
_RESIZE_ATTRS = {"size": Attr("shape", ()), "keep_ratio": Attr("bool", False), "interp": Attr("int", 1)}


def _resize_hw(h, w, size, keep_ratio):
    """MXNet's rule: size is (width, height); one value with keep_ratio sets the shorter side."""
    if len(size) == 1:
        s = size[0]
        if not keep_ratio:
            return s, s
        return (s, int(w * s / h)) if h <= w else (int(h * s / w), s)
    if len(size) != 2:
        raise ShapeError(f"_image_resize: size must be one value or (width, height), got {size}")
    return size[1], size[0]


def _resize_infer(t, size, keep_ratio, interp):
    _image("_image_resize", t)
    if interp not in (0, 1):
        raise OpAttributeError(f"_image_resize: interp={interp} is not supported (0 nearest, 1 bilinear)")
    h, w = _resize_hw(t.shape[-3], t.shape[-2], size, keep_ratio)
    return like(t, t.shape[:-3] + (h, w, t.shape[-1]))


def _linear_taps(src, dst):
    """OpenCV's INTER_LINEAR sample positions (pixel centres, clamped) with float weights."""
    f = (np.arange(dst) + 0.5) * (src / dst) - 0.5
    i0 = np.floor(f).astype(np.int64)
    frac = f - i0
    frac[i0 < 0], i0[i0 < 0] = 0.0, 0
    high = i0 >= src - 1
    frac[high], i0[high] = 0.0, src - 1
    return i0, np.minimum(i0 + 1, src - 1), frac


def _resize_one(img, h, w, interp):
    sh, sw = img.shape[:2]
    if interp == 0:
        rows = np.minimum((np.arange(h) * (sh / h)).astype(np.int64), sh - 1)
        cols = np.minimum((np.arange(w) * (sw / w)).astype(np.int64), sw - 1)
        return img[rows][:, cols]
    if img.dtype == np.uint8:
        # OpenCV's fixed-point arithmetic, as MXNet's (graphc.image.cv_resize, numpy only);
        # imported here because graphc.image's package imports the front end
        from graphc.image.cv_resize import resize_bilinear
        return resize_bilinear(img, w, h)
    y0, y1, fy = _linear_taps(sh, h)
    x0, x1, fx = _linear_taps(sw, w)
    d = img.astype(np.float64)
    rows = d[y0] * (1 - fy)[:, None, None] + d[y1] * fy[:, None, None]
    return (rows[:, x0] * (1 - fx)[None, :, None] + rows[:, x1] * fx[None, :, None]).astype(img.dtype)


def _resize_np(x, size, keep_ratio, interp):
    h, w = _resize_hw(x.shape[-3], x.shape[-2], size, keep_ratio)
    if x.ndim == 3:
        return np.ascontiguousarray(_resize_one(x, h, w, interp))
    return np.stack([_resize_one(im, h, w, interp) for im in x])


register(OpDef("_image_resize", infer=_resize_infer, compute=_resize_np, attrs=_RESIZE_ATTRS,
               doc="Resize HWC/NHWC images as OpenCV (nearest or bilinear); size is (width, height)."))


# -- colour ---------------------------------------------------------------------------------------

def _per_image(fn, x, *args):
    """fn applied to each image of a batch (contrast uses the image's own mean)."""
    return fn(x, *args) if x.ndim == 3 else np.stack([fn(im, *args) for im in x])


def brightness(img, alpha):
    return img * alpha


def contrast(img, alpha):
    gray_mean = float((img @ _GRAY).mean())
    return img * alpha + gray_mean * (1.0 - alpha)


def saturation(img, alpha):
    gray = img[..., 2:3] * _GRAY[2]      # MXNet 1.9.1's kernel (see the module docstring)
    return img * alpha + gray * (1.0 - alpha)


def hue(img, alpha):
    """Rotate the hue in HLS space by alpha * 360 degrees (MXNet's RGB2HLS / HLS2RGB)."""
    rgb = img / 255.0
    mx, mn = rgb.max(-1), rgb.min(-1)
    light = (mx + mn) / 2
    delta = mx - mn
    grey = delta == 0
    safe = np.where(grey, 1.0, delta)
    sat = np.where(grey, 0.0, np.where(light <= 0.5, delta / np.where(grey, 1.0, mx + mn),
                                        delta / np.where(grey, 1.0, 2.0 - mx - mn)))
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    h = np.where(mx == r, (g - b) / safe, np.where(mx == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
    h = ((h / 6.0) + alpha) % 1.0
    m2 = np.where(light <= 0.5, light * (1 + sat), light + sat - light * sat)
    m1 = 2 * light - m2

    def channel(t):
        t = t % 1.0
        return np.where(t < 1 / 6, m1 + (m2 - m1) * t * 6, np.where(t < 0.5, m2, np.where(
            t < 2 / 3, m1 + (m2 - m1) * (2 / 3 - t) * 6, m1)))
    out = np.stack([channel(h + 1 / 3), channel(h), channel(h - 1 / 3)], axis=-1)
    out = np.where(grey[..., None], rgb, out)
    return out * 255.0


def lighting(img, alpha):
    return img + _EIGVEC @ (np.asarray(alpha, np.float64) * _EIGVAL)


_COLOR = {"brightness": brightness, "contrast": contrast, "saturation": saturation, "hue": hue}
_FACTOR_ATTRS = {"min_factor": Attr("float"), "max_factor": Attr("float")}


def _rgb_infer(op):
    def infer(x, **_):
        _image(op, x, channels3=True)
        return x
    return infer


def _random_color(kind):
    fn = _COLOR[kind]

    def compute(x, min_factor, max_factor, rng=None):
        alpha = rng.uniform(min_factor, max_factor)
        return _saturate(_per_image(fn, x.astype(np.float64), alpha), x)
    return compute


for _kind in ("brightness", "contrast", "saturation", "hue"):
    register(OpDef(f"_image_random_{_kind}", infer=_rgb_infer(f"_image_random_{_kind}"),
                   compute=_random_color(_kind), attrs=_FACTOR_ATTRS, random=True,
                   doc=f"Random {_kind} change by a factor drawn from [min_factor, max_factor]."))


def _jitter_np(x, brightness, contrast, saturation, hue, rng=None):
    """The four changes whose amount is positive, in a random order; brightness, contrast and
    saturation factors from [max(0, 1 - a), 1 + a], hue's from [-a, a]."""
    parts = [(k, a) for k, a in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation),
                                 ("hue", hue)) if a > 0]
    out = x.astype(np.float64)
    for i in rng.permutation(len(parts)):
        kind, amount = parts[i]
        alpha = rng.uniform(-amount, amount) if kind == "hue" else rng.uniform(max(0.0, 1 - amount), 1 + amount)
        out = _per_image(_COLOR[kind], out, alpha)
    return _saturate(out, x)


register(OpDef("_image_random_color_jitter", infer=_rgb_infer("_image_random_color_jitter"), compute=_jitter_np,
               attrs={k: Attr("float", 0.0) for k in ("brightness", "contrast", "saturation", "hue")}, random=True,
               doc="Random brightness, contrast, saturation and hue changes in a random order."))


def _lighting_np(x, alpha):
    if len(alpha) != 3:
        raise OpAttributeError(f"_image_adjust_lighting: alpha must hold 3 values, got {alpha}")
    return _saturate(_per_image(lighting, x.astype(np.float64), alpha), x)


register(OpDef("_image_adjust_lighting", infer=_rgb_infer("_image_adjust_lighting"), compute=_lighting_np,
               attrs={"alpha": Attr("any")}, gradient=lambda F, ins, outs, gs, attrs: [gs[0]],
               doc="AlexNet's PCA lighting: add eigvec @ (alpha * eigval) to every pixel."))


def _random_lighting_np(x, alpha_std, rng=None):
    return _lighting_np(x, tuple(rng.normal(0.0, alpha_std, 3)))


register(OpDef("_image_random_lighting", infer=_rgb_infer("_image_random_lighting"), compute=_random_lighting_np,
               attrs={"alpha_std": Attr("float", 0.05)}, random=True,
               doc="adjust_lighting with alpha drawn from N(0, alpha_std)."))
