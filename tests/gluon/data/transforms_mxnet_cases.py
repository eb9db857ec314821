"""gluon.data.vision.transforms cases that run unchanged under Apache MXNet 1.9.1 and graphc
(`python transforms_mxnet_cases.py mxnet|graphc` prints the answers as JSON).

MXNet's random transforms draw in C++, which no seed shared with graphc can reproduce, so
the random colour cases fix the draw: both frameworks keep a colour transform's factor range
in `_args` = (min_factor, max_factor), and setting it to (f, f) makes the draw f while the rest
of the path (transform -> F.image operator, eager or hybridized) runs as usual. The range an
amount maps to is recorded separately. Probability-0/1 cases cover RandomApply and
RandomRotation; Rotate is deterministic.

Left out on purpose: RandomColorJitter() with every amount 0, where MXNet 1.9.1's kernel never
writes its output (it returns zeros, or whatever the buffer held) and graphc returns the image;
colour transforms on (N, H, W, C) batches, which MXNet rejects and graphc accepts."""
import json
import sys

import numpy as np


def _image(h=5, w=7, seed=0):
    return np.random.RandomState(seed).randint(0, 256, (h, w, 3)).astype(np.uint8)


def _out(y):
    return {"value": y.asnumpy().astype(np.float64), "dtype": [str(y.asnumpy().dtype)],
            "shape": list(y.shape)}


def _fixed(block, factor, x, hybridize=False):
    block._args = (factor, factor)
    if hybridize:
        block.hybridize()
    return _out(block(x))


def colour_cases(mx, T, x):
    cases = {}
    for name, cls in (("brightness", T.RandomBrightness), ("contrast", T.RandomContrast),
                      ("saturation", T.RandomSaturation), ("hue", T.RandomHue)):
        for f in (0.6, 1.3):
            cases[f"{name}_{f}"] = _fixed(cls(0.5), f, x)
        cases[f"{name}_hybrid"] = _fixed(cls(0.5), 0.8, x, hybridize=True)
        cases[f"{name}_float"] = _fixed(cls(0.5), 1.2, x.astype("float32"))
        cases[f"{name}_range"] = {"args": [float(a) for a in cls(0.3)._args] + [float(a) for a in cls(1.5)._args]}
    cases["hue_small_turn"] = _fixed(T.RandomHue(0.5), 0.95, x)
    cases["lighting_zero"] = _out(T.RandomLighting(0.0)(x))
    return cases


def geometry_cases(mx, T, x):
    t = T.ToTensor()(x)
    cases = {
        "to_tensor": _out(T.ToTensor()(x)),
        "to_tensor_batch": _out(T.ToTensor()(mx.nd.stack(x, x, axis=0))),
        "normalize": _out(T.Normalize((0.1, 0.2, 0.3), (0.5, 0.25, 2.0))(t)),
        "normalize_scalar": _out(T.Normalize(0.5, 0.2)(t)),
        "cast": _out(T.Cast("float16")(x)),
        "resize_keep_ratio": _out(T.Resize(4, keep_ratio=True)(x)),
        "resize_keep_ratio_tall": _out(T.Resize(3, keep_ratio=True)(_ctx_image(mx, 9, 5))),
        "resize_wh": _out(T.Resize((4, 3))(x)),
        "resize_up": _out(T.Resize((11, 8))(x)),
        "resize_float": _out(T.Resize((4, 3))(x.astype("float32"))),
        "resize_nearest": _out(T.Resize((9, 6), interpolation=0)(x)),
        "resize_batch": _out(T.Resize((4, 3))(mx.nd.stack(x, x[::-1], axis=0))),
        "crop_resize": _out(T.CropResize(1, 1, 4, 3, size=(6, 5), interpolation=1)(x)),
        "crop_only": _out(T.CropResize(2, 1, 3, 4)(x)),
        "center_crop": _out(T.CenterCrop(3)(x)),
        "center_crop_up": _out(T.CenterCrop((9, 8))(x)),
        "rotate": _out(T.Rotate(30)(t)),
        "rotate_zoom_in": _out(T.Rotate(-20, zoom_in=True)(t)),
        "rotate_zoom_out": _out(T.Rotate(45, zoom_out=True)(t)),
        "random_rotation_never": _out(T.RandomRotation((-10, 10), rotate_with_proba=0.0)(t)),
        "random_apply_always": _out(T.RandomApply(T.Resize((3, 2)), p=1.0)(x)),
        "random_apply_never": _out(T.RandomApply(T.Resize((3, 2)), p=0.0)(x)),
    }
    pipeline = T.Compose([T.Resize((6, 4)), T.ToTensor(), T.Normalize(0.5, 0.2), T.CenterCrop(3),
                          T.Cast("float64")])
    cases["compose"] = _out(pipeline(x))
    cases["compose_children"] = {"kinds": [type(pipeline[i]).__name__ for i in range(len(pipeline))]}
    for name, block in (("to_tensor", T.ToTensor()), ("normalize", T.Normalize(0.3, 0.5)),
                        ("resize", T.Resize((4, 6)))):
        block.hybridize()
        cases[f"{name}_hybrid"] = _out(block(t if name == "normalize" else x))
    return cases


def _ctx_image(mx, h, w):
    return mx.nd.array(_image(h, w, seed=1), dtype="uint8")


def all_cases(mx):
    T = mx.gluon.data.vision.transforms
    x = mx.nd.array(_image(), dtype="uint8")
    return {**colour_cases(mx, T, x), **geometry_cases(mx, T, x)}


def jsonable(tree):
    if isinstance(tree, dict):
        return {k: jsonable(v) for k, v in tree.items()}
    if isinstance(tree, np.ndarray):
        return tree.tolist()
    return tree


if __name__ == "__main__":
    if sys.argv[1] == "mxnet":
        import mxnet as mx_module
    else:
        import graphc as mx_module
    print(json.dumps(jsonable(all_cases(mx_module))))
