"""The evaluation-metric protocol of MXNet 1.9.1 (`mx.metric`): EvalMetric's running sums, the
name registry behind `mx.metric.create`, and the metrics made of other metrics or of a user's
function (CompositeEvalMetric, CustomMetric, `np`). The concrete metrics live in
metric_classification.py, metric_regression.py and metric_likelihood.py; gluon/metric.py gathers
them. Metrics run on the host (numpy); they must never touch the autograd tape.

An EvalMetric keeps two pairs of accumulators: (sum_metric, num_inst), the local ones that
`reset_local` clears (one epoch, one log interval), and (global_sum_metric, global_num_inst),
which only `reset` clears; `get()` and `get_global()` divide them."""
from __future__ import annotations

import json
from collections import OrderedDict

import numpy

from ..ndarray import NDArray

__all__ = ["EvalMetric", "CompositeEvalMetric", "CustomMetric", "create", "register", "alias", "np",
           "np_metric", "check_label_shapes"]

_REGISTRY: dict[str, type] = {}


def host(x):
    """A numpy view of an NDArray (or of anything numpy takes)."""
    return x.asnumpy() if isinstance(x, NDArray) else numpy.asarray(x)


def register(klass, *aliases):
    """Make `klass` creatable by its lower-cased class name and by each alias."""
    for name in (klass.__name__.lower(),) + tuple(aliases):
        _REGISTRY[name.lower()] = klass
    return klass


def alias(*aliases):
    """Class decorator: register the class under `aliases` as well as its own name."""
    def reg(klass):
        return register(klass, *aliases)
    return reg


def create(metric=None, *args, **kwargs):
    """A metric from a registered name ('acc', 'top_k_accuracy', 'f1', 'pcc', ...), an instance
    (returned as is), a function feval(label, pred) (a CustomMetric), a list of any of these (a
    CompositeEvalMetric), a config dict from get_config(), or its JSON ('[name, kwargs]' or
    '{"metric": name, ...}'). `create(**metric.get_config())` rebuilds a metric."""
    if metric is None:
        metric = kwargs.pop("metric")
    if isinstance(metric, EvalMetric):
        if args or kwargs:
            raise ValueError(f"metric.create: {metric.name!r} is already an EvalMetric; extra arguments "
                             f"{args or ''}{kwargs or ''} cannot apply to it")
        return metric
    if isinstance(metric, type) and issubclass(metric, EvalMetric):
        return metric(*args, **kwargs)
    if callable(metric):
        return CustomMetric(metric, *args, **kwargs)
    if isinstance(metric, list):
        composite = CompositeEvalMetric()
        for child in metric:
            composite.add(create(child, *args, **kwargs))
        return composite
    if isinstance(metric, dict):
        return create(**metric)
    if not isinstance(metric, str):
        raise TypeError(f"metric.create: expected a metric name, instance, function, list or dict, got {metric!r}")
    text = metric.strip()
    if text.startswith("["):
        name, config = json.loads(text)
        return create(name, **config)
    if text.startswith("{"):
        return create(**json.loads(text))
    klass = _REGISTRY.get(text.lower())
    if klass is None:
        raise ValueError(f"metric.create: {metric!r} is not a registered metric; registered: {sorted(_REGISTRY)}")
    return klass(*args, **kwargs)


def check_label_shapes(labels, preds, wrap=False, shape=False):
    """Raise unless there are as many labels as predictions (with shape, unless their shapes are
    equal); with wrap, a single array becomes a one-element list."""
    if not shape:
        label_shape, pred_shape = len(labels), len(preds)
    else:
        label_shape, pred_shape = tuple(labels.shape), tuple(preds.shape)
    if label_shape != pred_shape:
        raise ValueError(f"Shape of labels {label_shape} does not match shape of predictions {pred_shape}")
    if wrap:
        if isinstance(labels, (NDArray, numpy.ndarray)):
            labels = [labels]
        if isinstance(preds, (NDArray, numpy.ndarray)):
            preds = [preds]
    return labels, preds


class EvalMetric:
    """Base class: subclasses implement update(labels, preds) and add to both accumulator pairs.

    name: how get() reports it; output_names / label_names: which entries of the dicts given to
    update_dict() it reads (all, in order, when None)."""

    def __init__(self, name, output_names=None, label_names=None, **kwargs):
        self.name = str(name)
        self.output_names = output_names
        self.label_names = label_names
        self._has_global_stats = kwargs.pop("has_global_stats", False)
        self._kwargs = kwargs
        self.reset()

    def __str__(self):
        return f"EvalMetric: {dict(self.get_name_value())}"

    def get_config(self):
        """The constructor arguments, with 'metric' naming the class: create(**config) rebuilds it."""
        config = dict(self._kwargs)
        config.update({"metric": self.__class__.__name__, "name": self.name,
                       "output_names": self.output_names, "label_names": self.label_names})
        return config

    def update_dict(self, label, pred):
        preds = [pred[n] for n in self.output_names] if self.output_names is not None else list(pred.values())
        labels = [label[n] for n in self.label_names] if self.label_names is not None else list(label.values())
        self.update(labels, preds)

    def update(self, labels, preds):
        raise NotImplementedError(f"{type(self).__name__} must implement update(labels, preds)")

    def reset(self):
        self.num_inst = 0
        self.sum_metric = 0.0
        self.global_num_inst = 0
        self.global_sum_metric = 0.0

    def reset_local(self):
        self.num_inst = 0
        self.sum_metric = 0.0

    def _accumulate(self, value, count):
        self.sum_metric += value
        self.global_sum_metric += value
        self.num_inst += count
        self.global_num_inst += count

    def get(self):
        if self.num_inst == 0:
            return (self.name, float("nan"))
        return (self.name, self.sum_metric / self.num_inst)

    def get_global(self):
        if not self._has_global_stats:
            return self.get()
        if self.global_num_inst == 0:
            return (self.name, float("nan"))
        return (self.name, self.global_sum_metric / self.global_num_inst)

    def get_name_value(self):
        return _zip_name_value(*self.get())

    def get_global_name_value(self):
        return _zip_name_value(*self.get_global()) if self._has_global_stats else self.get_name_value()


def _zip_name_value(name, value):
    return list(zip(name if isinstance(name, list) else [name], value if isinstance(value, list) else [value]))


@alias("composite")
class CompositeEvalMetric(EvalMetric):
    """Several metrics updated together; get() returns the list of their names and the list of
    their values, in the order they were added."""

    def __init__(self, metrics=None, name="composite", output_names=None, label_names=None):
        super().__init__(name, output_names=output_names, label_names=label_names, has_global_stats=True)
        self.metrics = [create(m) for m in (metrics or [])]

    def add(self, metric):
        self.metrics.append(create(metric))

    def get_metric(self, index):
        # MXNet returns (not raises) the ValueError here; raising is what its docstring promises
        try:
            return self.metrics[index]
        except IndexError:
            raise ValueError(f"Metric index {index} is out of range 0 and {len(self.metrics)}") from None

    def update_dict(self, labels, preds):
        if self.label_names is not None:
            labels = OrderedDict((k, v) for k, v in labels.items() if k in self.label_names)
        if self.output_names is not None:
            preds = OrderedDict((k, v) for k, v in preds.items() if k in self.output_names)
        for metric in self.metrics:
            metric.update_dict(labels, preds)

    def update(self, labels, preds):
        for metric in self.metrics:
            metric.update(labels, preds)

    def reset(self):
        for metric in getattr(self, "metrics", []):      # the base __init__ resets before metrics exist
            metric.reset()

    def reset_local(self):
        for metric in self.metrics:
            metric.reset_local()

    def _gather(self, method):
        names, values = [], []
        for metric in self.metrics:
            name, value = getattr(metric, method)()
            names.extend(name if isinstance(name, list) else [name])
            values.extend(value if isinstance(value, list) else [value])
        return (names, values)

    def get(self):
        return self._gather("get")

    def get_global(self):
        return self._gather("get_global")


@register
class CustomMetric(EvalMetric):
    """feval(label, pred) on numpy arrays, returning a value (one instance) or (sum, count);
    with allow_extra_outputs, more predictions than labels are allowed (zip pairs the first)."""

    def __init__(self, feval, name=None, allow_extra_outputs=False, output_names=None, label_names=None):
        if name is None:
            name = feval.__name__
            if "<" in name:
                name = f"custom({name})"
        super().__init__(name, feval=feval, allow_extra_outputs=allow_extra_outputs, output_names=output_names,
                         label_names=label_names, has_global_stats=True)
        self._feval = feval
        self._allow_extra_outputs = allow_extra_outputs

    def update(self, labels, preds):
        if not self._allow_extra_outputs:
            labels, preds = check_label_shapes(labels, preds, True)
        for pred, label in zip(preds, labels):
            reval = self._feval(host(label), host(pred))
            if isinstance(reval, tuple):
                self._accumulate(reval[0], reval[1])
            else:
                self._accumulate(reval, 1)

    def get_config(self):
        raise NotImplementedError("CustomMetric cannot be serialized")


def np(numpy_feval, name=None, allow_extra_outputs=False):
    """A CustomMetric from a numpy function feval(label, pred) (MXNet's `mx.metric.np`)."""
    def feval(label, pred):
        return numpy_feval(label, pred)
    feval.__name__ = numpy_feval.__name__
    return CustomMetric(feval, name, allow_extra_outputs)


np_metric = np
