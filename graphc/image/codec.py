"""Image bytes <-> HWC uint8 numpy arrays, on Pillow (imported on first use, with an error that
says how to install it). This is the only module of mx.image that touches Pillow's decoders.

Two layouts are served: MXNet's mx.image one (`decode`: RGB by default, gray as HxWx1) and
OpenCV's, which recordio.pack_img/unpack_img keep for compatibility (`decode_cv`: BGR, gray as
HxW, -1 keeps the stored channels). PNG pixels are exact. JPEG: Pillow and OpenCV both decode
with libjpeg(-turbo), and the pixels equalled MXNet's in every test here; a different libjpeg
build may differ by a level or two (the tests allow 2), and encoded JPEG bytes are not OpenCV's.
"""
from __future__ import annotations

import io

import numpy as np

__all__ = ["pil", "decode", "decode_cv", "encode"]


def pil():
    """Pillow's Image module, or an ImportError that says how to get it."""
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - exercised only without Pillow
        raise ImportError("graphc.image needs Pillow to decode, encode and resize images: "
                          "pip install 'graphc[vision]' (or pip install Pillow)") from exc
    return Image


def _as_bytes(buf) -> bytes:
    if isinstance(buf, (bytes, bytearray, memoryview)):
        return bytes(buf)
    if hasattr(buf, "asnumpy"):
        buf = buf.asnumpy()
    arr = np.asarray(buf)
    if arr.dtype != np.uint8 or arr.ndim != 1:
        raise TypeError(f"imdecode: expected bytes or a 1-D uint8 array of encoded image bytes, got "
                        f"{arr.dtype} array of shape {arr.shape}")
    return arr.tobytes()


def _open(buf):
    Image = pil()
    data = _as_bytes(buf)
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except Exception as exc:  # noqa: BLE001 - Pillow raises several types for bad bytes
        raise ValueError(f"imdecode: could not decode {len(data)} bytes as an image ({exc})") from None
    return img


def _gray(img) -> np.ndarray:
    """HxW uint8 luminance. A colour image is converted as OpenCV's PNG reader does (libpng's
    rgb_to_gray with weights 0.299/0.587: 9797/19234/3737 in 15-bit fixed point after libpng
    truncates them, sum truncated), so that gray batches equal MXNet's; Pillow's own 'L'
    conversion rounds and differs by one level on some pixels."""
    if img.mode in ("L", "1", "I;16", "I", "F"):
        return _to_array(img, "L")
    rgb = _to_array(img, "RGB").astype(np.uint32)
    return ((rgb[..., 0] * 9797 + rgb[..., 1] * 19234 + rgb[..., 2] * 3737) >> 15).astype(np.uint8)


def _to_array(img, mode):
    return np.asarray(img.convert(mode) if img.mode != mode else img).copy()


def decode(buf, flag=1, to_rgb=True) -> np.ndarray:
    """Encoded bytes -> HxWx3 uint8 (RGB, or BGR when to_rgb is false) for flag 1, HxWx1 gray
    for flag 0 (MXNet's imdecode)."""
    img = _open(buf)
    if flag == 0:
        return _gray(img)[:, :, None]
    out = _to_array(img, "RGB")
    return out if to_rgb else np.ascontiguousarray(out[:, :, ::-1])


def decode_cv(buf, iscolor=-1) -> np.ndarray:
    """Encoded bytes -> an array in cv2.imdecode's layout (see the module docstring)."""
    img = _open(buf)
    if iscolor == 0 or (iscolor < 0 and img.mode in ("L", "1", "I;16", "I", "F")):
        return _gray(img)
    if iscolor < 0 and img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info
                                                             and iscolor < 0):
        rgba = _to_array(img, "RGBA")
        return np.ascontiguousarray(rgba[:, :, [2, 1, 0, 3]])
    return np.ascontiguousarray(_to_array(img, "RGB")[:, :, ::-1])


def encode(img: np.ndarray, img_fmt=".jpg", quality=95, bgr=False) -> bytes:
    """An HxW or HxWxC uint8 array -> encoded bytes in img_fmt ('.jpg'/'.jpeg'/'.png').
    bgr=True reads 3/4-channel arrays in OpenCV's channel order."""
    Image = pil()
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise TypeError(f"imencode: expected a uint8 image, got {img.dtype}")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3 and bgr and img.shape[2] in (3, 4):
        img = img[:, :, [2, 1, 0, 3][:img.shape[2]]]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (3, 4)):
        raise ValueError(f"imencode: expected an HxW, HxWx1, HxWx3 or HxWx4 image, got shape {img.shape}")
    pic = Image.fromarray(np.ascontiguousarray(img))
    fmt = img_fmt.lower().lstrip(".")
    out = io.BytesIO()
    if fmt in ("jpg", "jpeg"):
        if pic.mode == "RGBA":
            raise ValueError("imencode: JPEG cannot hold an alpha channel; use '.png'")
        pic.save(out, format="JPEG", quality=int(quality))
    elif fmt == "png":
        pic.save(out, format="PNG", compress_level=min(max(int(quality), 0), 9))
    else:
        raise ValueError(f"imencode: image format must be '.jpg', '.jpeg' or '.png', got {img_fmt!r}")
    return out.getvalue()
