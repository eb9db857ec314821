"""gluon.contrib.estimator against Apache MXNet 1.9.1 (recorded answers, live where MXNet's
venv exists; cases in gluon_contrib_cases.py: a fit with validation, user handlers between the
defaults and their log lines, early stopping, checkpoint files, evaluate), and what MXNet cannot
check here: resuming from a checkpoint, data parallelism over two CPU devices, replacing a
default handler, the argument checks, and 'auto' mode (graphc follows MXNet's documentation)."""
import logging
import os

import numpy as np
import pytest

import graphc as mx
from graphc import gluon
from graphc.gluon.contrib import estimator as est_mod
from graphc.gluon.contrib.estimator import event_handler

import gluon_contrib_cases as cases

SECTION = "estimator"


@pytest.mark.parametrize("mode,case", cases.recorded_cases(SECTION))
def test_graphc_matches_recorded_mxnet(mode, case):
    cases.assert_same(f"{mode}.{case}", cases.graphc_answers(SECTION, mode)[case], cases.recorded(SECTION)[mode][case])


def test_every_case_is_recorded():
    for mode in cases.MODES:
        assert sorted(cases.graphc_answers(SECTION, mode)) == sorted(cases.recorded(SECTION)[mode])


@pytest.mark.skipif(not cases.HAVE_MXNET, reason="MXNet 1.9.1 venv (bench/.venvs/mxnet) not installed")
def test_live_mxnet_gives_the_recorded_answers():
    live = cases.live_mxnet(SECTION)
    for mode in cases.MODES:
        cases.assert_same(mode, cases.recorded(SECTION)[mode], live[mode])


def _quiet(est):
    est.logger.handlers = []
    est.logger.setLevel(logging.WARNING)
    return est


def _weights(net):
    params = net.collect_params()
    return [params[name].data().asnumpy() for name in sorted(params.keys())]


def test_resuming_from_checkpoints_continues_where_the_first_run_stopped(tmp_path):
    """Two epochs, then a resumed run of four epochs (doing the last two), end with the weights
    of four epochs in one go: parameters and the momentum states come back from the files."""
    data = cases._loader(mx, 12, 1, 4)
    straight, net_straight = cases._estimator(mx, False)
    _quiet(straight).fit(data, epochs=4)

    first, _ = cases._estimator(mx, False)
    ckpt = est_mod.CheckpointHandler(str(tmp_path), model_prefix="run", epoch_period=1)
    _quiet(first).fit(data, epochs=2, event_handlers=[ckpt])
    assert sorted(os.listdir(tmp_path)) == ["run-epoch0batch3.params", "run-epoch0batch3.states",
                                            "run-epoch1batch6.params", "run-epoch1batch6.states"]
    resumed, net_resumed = cases._estimator(mx, False)
    resume = est_mod.CheckpointHandler(str(tmp_path), model_prefix="run", epoch_period=1, resume_from_checkpoint=True)
    _quiet(resumed).fit(data, epochs=4, event_handlers=[resume])
    assert resumed.max_epoch == 2
    for a, b in zip(_weights(net_resumed), _weights(net_straight)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert "run-epoch3batch12.params" in os.listdir(tmp_path)
    with pytest.raises(ValueError, match="maximum number of epoch 2 reached"):
        again, _ = cases._estimator(mx, False)
        _quiet(again).fit(data, epochs=2, event_handlers=[
            est_mod.CheckpointHandler(str(tmp_path), model_prefix="run", resume_from_checkpoint=True)])


def test_hybridized_net_checkpoint_writes_the_symbol_file(tmp_path):
    est, _ = cases._estimator(mx, True)
    _quiet(est).fit(cases._loader(mx, 8, 2, 4), batches=1,
                    event_handlers=[est_mod.CheckpointHandler(str(tmp_path), model_prefix="h", epoch_period=None,
                                                              batch_period=1)])
    assert sorted(os.listdir(tmp_path)) == ["h-epoch0batch0.params", "h-epoch0batch0.states", "h-symbol.json"]
    symbol = mx.sym.load(str(tmp_path / "h-symbol.json"))
    assert "hybridsequential0_dense1_weight" in symbol.list_arguments()


def test_two_cpu_devices_train_like_one():
    one, net_one = cases._estimator(mx, False)
    _quiet(one).fit(cases._loader(mx, 12, 3, 4), epochs=2)
    two, net_two = cases._estimator(mx, False, context=[mx.cpu(0), mx.cpu(1)])
    assert two.context == [mx.cpu(0), mx.cpu(1)]
    # _estimator initialized the net on cpu(0) before the Estimator saw the devices: put it on both
    net_two.collect_params().reset_ctx([mx.cpu(0), mx.cpu(1)])
    two.trainer = gluon.Trainer(net_two.collect_params(), "sgd", {"learning_rate": 0.2, "momentum": 0.5})
    _quiet(two).fit(cases._loader(mx, 12, 3, 4), epochs=2)
    for a, b in zip(_weights(net_two), _weights(net_one)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(two.train_metrics[1].get()[1], one.train_metrics[1].get()[1], rtol=1e-5)


def test_a_handler_of_a_default_class_replaces_the_default():
    est, _ = cases._estimator(mx, False)
    steps = []

    class Counting(event_handler.GradientUpdateHandler):
        def batch_end(self, estimator, *args, **kwargs):
            steps.append(sum(loss.shape[0] for loss in kwargs["loss"]))
            super().batch_end(estimator, *args, **kwargs)
    _quiet(est).fit(cases._loader(mx, 10, 4, 4), epochs=1, event_handlers=[Counting()])
    assert steps == [4, 4, 2]
    handlers = est._prepare_default_handlers(None, [Counting()])
    assert [type(h).__name__ for h in handlers] == ["Counting", "MetricHandler", "StoppingHandler", "LoggingHandler"]


def test_batches_stop_in_the_middle_of_an_epoch_and_count_across_epochs():
    est, _ = cases._estimator(mx, False)
    stopper = event_handler.StoppingHandler()
    _quiet(est).fit(cases._loader(mx, 12, 5, 4), batches=5, event_handlers=[stopper])
    assert stopper.current_batch == 5 and stopper.current_epoch == 2


def test_arguments_are_checked_as_mxnet_checks_them():
    est, _ = cases._estimator(mx, False)
    loader = cases._loader(mx, 4, 6, 4)
    with pytest.raises(ValueError, match="only support input as Gluon DataLoader"):
        est.fit([(mx.nd.ones((1, 4)), mx.nd.ones((1,)))], epochs=1)
    with pytest.raises(ValueError, match="one and only one of: epochs or batches"):
        est.fit(loader, epochs=1, batches=1)
    with pytest.raises(ValueError, match="loss must be a Loss"):
        est_mod.Estimator(est.net, loss="l2")
    with pytest.raises(ValueError, match="refers to a metric instance"):
        est.fit(loader, epochs=1, event_handlers=[est_mod.LoggingHandler(metrics=[mx.metric.Accuracy()])])
    with pytest.raises(ValueError, match="log_interval must be either an integer or string 'epoch'"):
        est_mod.LoggingHandler(log_interval="batch")
    with pytest.raises(ValueError, match="Customized Batch Processor must contain"):
        est_mod.Estimator(est.net, gluon.loss.L2Loss(), trainer=est.trainer, batch_processor=object())


def test_default_metrics_and_trainer():
    net = gluon.nn.Dense(2, in_units=3)
    with pytest.warns(UserWarning, match="default SGD optimizer with learning rate 0.001"):
        est = est_mod.Estimator(net, gluon.loss.L2Loss())
    assert [m.name for m in est.train_metrics] == ["training l2loss"]
    assert [m.name for m in est.val_metrics] == ["validation l2loss"]
    assert est.trainer.learning_rate == 0.001 and net.weight.list_ctx() == [mx.cpu()]


@pytest.mark.parametrize("metric,expected", [(mx.metric.Accuracy(), np.greater), (mx.metric.Loss(), np.less),
                                             (mx.metric.F1(), np.greater)])
def test_auto_mode_follows_mxnet_documentation(metric, expected):
    with pytest.warns(UserWarning, match="operator will be used"):
        assert est_mod.EarlyStoppingHandler(monitor=metric).monitor_op is expected


def test_early_stopping_in_min_mode_waits_patience_epochs_past_the_best():
    metric = mx.metric.Loss()
    stopper = est_mod.EarlyStoppingHandler(monitor=metric, mode="min", patience=2, min_delta=0.05)
    stopper.train_begin(None)
    stops, bests = [], []
    for value in (1.0, 0.9, 0.88, 0.87, 0.5):
        metric.reset()
        metric.update(None, [mx.nd.array([value])])
        stops.append(stopper.epoch_end(None))
        bests.append(stopper.best)
    # 0.88 and 0.87 are within min_delta of 0.9: no improvement; once stopped it stays stopped
    assert stops == [False, False, False, True, True] and stopper.stopped_epoch == 3
    np.testing.assert_allclose(bests, [1.0, 0.9, 0.9, 0.9, 0.5], rtol=1e-6)


def test_validation_every_few_batches_and_a_custom_batch_processor():
    calls = []

    class Recording(est_mod.BatchProcessor):
        def fit_batch(self, estimator, train_batch, batch_axis=0):
            calls.append("fit")
            return super().fit_batch(estimator, train_batch, batch_axis)

        def evaluate_batch(self, estimator, val_batch, batch_axis=0):
            calls.append("evaluate")
            return super().evaluate_batch(estimator, val_batch, batch_axis)
    est, _ = cases._estimator(mx, False, batch_processor=Recording(),
                                val_loss=gluon.loss.SoftmaxCrossEntropyLoss())
    val = cases._loader(mx, 3, 7, 3)                                  # one batch per evaluation
    handler = est_mod.ValidationHandler(val_data=val, eval_fn=est.evaluate, epoch_period=None, batch_period=2)
    _quiet(est).fit(cases._loader(mx, 20, 8, 4), epochs=1, event_handlers=[handler])
    assert calls == ["fit", "fit", "evaluate", "fit", "fit", "evaluate", "fit"]
    assert est.val_loss is not est.loss and np.isfinite(est.val_metrics[-1].get()[1])
