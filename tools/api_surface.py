"""How a public name and its parameters are read off a Python API, the same way for MXNet and graphc.

Imported by tools/mxnet_api_names.py (under MXNet's virtual environment) and tools/compat_table.py
(under graphc's), so the two sides of the comparison are read by one rule. Standard library only:
this file must never import mxnet or graphc, because it runs in both environments.
"""
from __future__ import annotations

import ast
import inspect
import sys
import textwrap
import types

# Where each namespace lives, as a user reaches it from the top-level module (`mx.<path>`).
# Recorded from MXNet and looked up in graphc under the same attribute path.
MODULE_PATHS = (
    "", "nd", "nd.contrib", "nd.random", "nd.linalg", "nd.sparse", "nd.image",
    "sym", "sym.contrib", "sym.random", "sym.linalg", "sym.sparse", "sym.image",
    "autograd", "gluon", "gluon.nn", "gluon.rnn", "gluon.loss", "gluon.data", "gluon.data.vision",
    "gluon.data.vision.transforms", "gluon.model_zoo.vision", "gluon.contrib.nn",
    "gluon.contrib.rnn", "gluon.contrib.cnn", "gluon.contrib.data", "gluon.contrib.data.text",
    "gluon.contrib.estimator", "gluon.utils", "optimizer", "lr_scheduler", "metric", "initializer",
    "kvstore", "io", "recordio", "image", "module", "callback", "model", "operator", "profiler",
    "viz", "onnx", "contrib.onnx", "rnn", "test_utils", "context", "base", "util", "random",
)

# Objects whose attributes (methods, properties, instance attributes) are compared too. An
# instance is built from `factory` (evaluated with `mx` bound to the framework) so that attributes
# set in __init__ and methods supplied by __getattr__ (NDArray's fluent operator methods) count.
CLASS_FACTORIES = (
    ("nd.NDArray", "mx.nd.zeros((2, 3))"),
    ("sym.Symbol", "mx.sym.var('data')"),
    ("gluon.Block", "mx.gluon.Block()"),
    ("gluon.HybridBlock", "mx.gluon.HybridBlock()"),
    ("gluon.SymbolBlock", "mx.gluon.SymbolBlock(mx.sym.var('data'), mx.sym.var('data'))"),
    ("gluon.Parameter", "mx.gluon.Parameter('weight', shape=(2, 3))"),
    ("gluon.ParameterDict", "mx.gluon.ParameterDict()"),
    ("gluon.Trainer", "(lambda net: net.initialize() or mx.gluon.Trainer(net.collect_params(), 'sgd'))"
                      "(mx.gluon.nn.Dense(2, in_units=3))"),
    ("gluon.data.DataLoader", "mx.gluon.data.DataLoader(mx.gluon.data.SimpleDataset([1, 2]), batch_size=1)"),
    ("module.Module", "mx.mod.Module(mx.sym.var('data'), data_names=('data',), label_names=None)"),
)


def resolve(root, path: str):
    """`mx.a.b` for path 'a.b' (the root itself for ''); AttributeError when a step is missing."""
    obj = root
    for step in path.split(".") if path else ():
        obj = getattr(obj, step)
    return obj


def is_foreign(obj, home: str) -> bool:
    """True for what a module merely re-exports from another library (numpy, ctypes, typing...).

    A name counts as the framework's own when its defining module is the framework (`home`) or a
    module that does not exist (MXNet's generated operator functions claim module 'ndarray')."""
    if isinstance(obj, types.ModuleType):
        return True
    if inspect.isclass(obj) and any(b.__module__ in ("ctypes", "_ctypes") for b in obj.__mro__[1:]):
        return True  # a ctypes type an MXNet module names for its C calls (c_int_p, mx_float_p)
    if inspect.isclass(obj) or inspect.isroutine(obj):
        owner = getattr(obj, "__module__", None)
    else:
        owner = type(obj).__module__
        if owner == "builtins":  # constants: numbers, strings, tuples of types
            return False
    if not owner:
        return False
    top = owner.split(".")[0]
    return top != home and top in sys.modules


# Where the framework keeps names that many of its modules import for their own use: the
# plumbing (ctypes helpers, numeric_types, the numpy-mode switches) and the core classes. A user
# reaches such a name at its home, at the top level, or in the packages listed here; the other
# importers (mx.autograd.NDArray, mx.metric.string_types) do not offer it.
REEXPORT_HOMES = {"base": (), "_ctypes": (), "util": (), "context": (), "libinfo": (),
                  "runtime": (), "ndarray.ndarray": ("ndarray",), "symbol.symbol": ("symbol",),
                  "attribute": ("symbol",)}
SHARED_CONSTANT_SOURCES = ("math",)


def _origin(name: str, obj, home: str):
    """The module a name comes from: a class's or function's own module; for a constant, the
    first of REEXPORT_HOMES (then SHARED_CONSTANT_SOURCES) holding that very object."""
    if inspect.isclass(obj) or inspect.isroutine(obj):
        return getattr(obj, "__module__", None)
    if isinstance(obj, (bool, type(None))):
        return None  # singletons: identity says nothing about where they came from
    for module in [f"{home}.{s}" for s in REEXPORT_HOMES] + list(SHARED_CONSTANT_SOURCES):
        if getattr(sys.modules.get(module), name, _ABSENT) is obj:
            return module
    return None


def is_reexport(name: str, obj, home: str, namespace: str) -> bool:
    """True for a name `namespace` only imported from one of REEXPORT_HOMES (or a constant from
    SHARED_CONSTANT_SOURCES, such as math.pi)."""
    origin = _origin(name, obj, home)
    if origin is None or origin == namespace or namespace == home:
        return False
    if origin in SHARED_CONSTANT_SOURCES:
        return True
    for suffix, also in REEXPORT_HOMES.items():
        if origin == f"{home}.{suffix}" or origin.startswith(f"{home}.{suffix}."):
            return namespace not in (f"{home}.{a}" for a in also)
    return False


_ABSENT = object()


def public_names(obj, home: str) -> list:
    """The public names of a module or an instance, without re-exports of other libraries, of
    the framework's plumbing, or a module's optional dependencies that are absent (None)."""
    namespace = obj.__name__ if isinstance(obj, types.ModuleType) else home
    names = []
    for name in dir(obj):
        if name.startswith("_"):
            continue
        try:
            static = inspect.getattr_static(obj, name)
        except AttributeError:
            static = None
        if isinstance(static, (property, types.GetSetDescriptorType, types.MemberDescriptorType)):
            names.append(name)
            continue
        try:
            value = getattr(obj, name)
        except Exception:  # noqa: BLE001  (a property that cannot run on a bare instance still exists)
            names.append(name)
            continue
        if value is None and isinstance(obj, types.ModuleType):
            continue
        if not is_foreign(value, home) and not is_reexport(name, value, home, namespace):
            names.append(name)
    return sorted(names)


def _named(sig):
    params = [p for p in sig.parameters.values() if p.name != "self"]
    named = [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    return named, any(p.kind is p.VAR_KEYWORD for p in params)


def _keywords_passed(init) -> set:
    """Keyword names a constructor passes to its base's: `super().__init__(fuse_relu=False,
    **kwargs)` fixes fuse_relu, so a caller cannot give it through **kwargs."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(init)))
    except (OSError, TypeError, SyntaxError):
        return set()
    return {kw.arg for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "__init__"
            for kw in node.keywords if kw.arg}


def class_parameters(cls):
    """Constructor parameters of a class. A constructor taking **kwargs hands them to its base
    (Gluon's prefix=/params= reach Block.__init__ that way), so the bases' parameters count
    too, except those the constructor sets itself, until a constructor without **kwargs.
    Returns (names, still_open) or None."""
    names, fixed = [], set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        if klass is object:
            return names, True
        try:
            named, open_kw = _named(inspect.signature(init))
        except (TypeError, ValueError):
            return (names, True) if names else None
        names += [n for n in named if n not in names and n not in fixed]
        if not open_kw:
            return names, False
        fixed |= _keywords_passed(init)
    return names, True


def parameters(obj):
    """(parameter names, takes **kwargs) of a callable, or None when it has no readable signature."""
    if inspect.isclass(obj):
        return class_parameters(obj)
    if not callable(obj):
        return None
    try:
        return _named(inspect.signature(obj))
    except (TypeError, ValueError):
        return None


def kind_of(owner, name, value) -> str:
    static = None
    try:
        static = inspect.getattr_static(owner, name)
    except AttributeError:
        pass
    if isinstance(static, (property, types.GetSetDescriptorType, types.MemberDescriptorType)):
        return "property"
    if inspect.isclass(value):
        return "class"
    if callable(value):
        return "function"
    return "value"
