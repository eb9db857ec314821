"""Gluon behaviours MXNet 1.x's own unit tests (test_gluon.py, test_gluon_trainer.py,
test_gluon_contrib.py, test_gluon_data.py, test_gluon_estimator.py, test_gluon_save.py,
test_optimizer.py) rely on, compared with MXNet 1.9.1: graphc's answers to gluon_v1_cases.py
must equal the answers recorded from MXNet below, and live MXNet (where bench/.venvs/mxnet
exists) must still give the recorded ones."""
import json
import math
import os
import subprocess
import sys

import pytest

import graphc as mx

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gluon_v1_cases as cases  # noqa: E402
from mxnet_oracle import MXNET_PYTHON, needs_mxnet


# `python gluon_v1_cases.py mxnet` under MXNet 1.9.1
RECORDED = {'block_on_free_symbol': {'arg_shapes': [[5, 3], [8, 3], [8], [4, 8], [4]],
                          'arguments': ['data', 'm_dense0_weight', 'm_dense0_bias', 'm_dense1_weight',
                                        'm_dense1_bias'],
                          'out_shapes': [[5, 4]]},
 'block_save_load': {'json_children': {'dense1': 'dense11', 'keyed0': 'keyed00'},
                     'json_top': ['keyed0'],
                     'keys_after': ['keyed00', 'dense11'],
                     'keys_before': ['keyed20', 'dense31'],
                     'names_after': ['keyed0', 'dense1'],
                     'same_output': True},
 'conv_rnn_cell_infers_channels': {'i2h_weight': [40, 5, 3], 'out': [8, 3, 10, 5]},
 'dataloader_pin_memory': {'pinned': ['cpu_pinned(0)', 'cpu_pinned(0)'],
                           'pinned1': ['cpu_pinned(1)', 'cpu_pinned(1)'],
                           'plain': ['cpu(0)', 'cpu(0)'],
                           'values': [[[0.0, 1.0], [2.0, 3.0], [4.0, 5.0], [6.0, 7.0]],
                                      [[8.0, 9.0], [10.0, 11.0]]]},
 'dense_load_parameters_dtype_saved': {'data': 'float16', 'is_float16': True},
 'estimator_unavailable_gpu': {'not_a_context': 'ValueError', 'unavailable_gpu': 'AssertionError'},
 'load_dtype_source': {'current': ['float16', 'float64'],
                       'dtype_is_np_float32': True,
                       'saved': ['float32', 'int8'],
                       'values': [[1, 1, 1], [1, 1, 1]]},
 'op_names_under_block_scope': ['outer_activation0_output', 'outer_activation1_output',
                                'outer_inner0_activation0_output', 'outer_activation2_output'],
 'row_sparse_weight_updates': {'adam_lazyFalse': {'stype': 'row_sparse',
                                                  'w': [[-0.19997400045394897, -0.0749880000948906],
                                                        [0.05425199866294861, 0.17695599794387817],
                                                        [0.30118700861930847, 0.4258269965648651],
                                                        [0.9499920010566711, 0.6750050187110901]]},
                               'adam_lazyTrue': {'stype': 'row_sparse',
                                                 'w': [[-0.19997400045394897, -0.0749880000948906],
                                                       [0.25, 0.375], [0.5, 0.625],
                                                       [0.9499920010566711, 0.6750050187110901]]},
                               'sgd_lazyFalse': {'stype': 'row_sparse',
                                                 'w': [[-0.289000004529953, -0.4566130042076111],
                                                       [0.24277499318122864, 0.36416199803352356],
                                                       [0.4855499863624573, 0.6069369912147522],
                                                       [1.595324993133545, -0.3062869906425476]]},
                               'sgd_lazyTrue': {'stype': 'row_sparse',
                                                'w': [[-0.289000004529953, -0.4566130042076111],
                                                      [0.25, 0.375], [0.5, 0.625],
                                                      [1.595324993133545, -0.3062869906425476]]}},
 'sparse_adagrad_epsilon': [[0.9409809708595276, 0.8994070291519165, 0.8744810223579407], [1.0, 1.0, 1.0],
                            [0.8292890191078186, 1.1707110404968262, 0.8292890191078186]],
 'sparse_grad_update_on_kvstore': {'False': False, 'None': False, 'True': True},
 'summary_inputs_and_hybridized': {'hooks_left': 0, 'hybridized_refused': True, 'printed_output_shape': True},
 'symbol_block_on_free_symbol': {'n_expected': 8, 'n_ndarray_outputs': 8, 'n_outputs': 8},
 'symbol_block_refuses_row_sparse': {'names_weight': True, 'raised': 'AssertionError'},
 'trainer_reset_kvstore_on_load': {'device': {'after': [True, False],
                                              'before': [False, True],
                                              'weights': [-0.20000000298023224, -0.20000000298023224,
                                                          -0.20000000298023224, -0.20000000298023224]},
                                   'local': {'after': [True, False],
                                             'before': [False, True],
                                             'weights': [-0.20000000298023224, -0.20000000298023224,
                                                         -0.20000000298023224, -0.20000000298023224]}}}


def _same(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-7)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def test_every_case_is_recorded():
    assert sorted(RECORDED) == sorted(case.__name__ for case in cases.CASES)


@pytest.mark.parametrize("case", cases.CASES, ids=lambda c: c.__name__)
def test_graphc_answers_as_mxnet(case, tmp_path):
    got = case(mx, str(tmp_path))
    assert _same(json.loads(json.dumps(got)), RECORDED[case.__name__]), \
        f"{case.__name__}: graphc gives {got}, MXNet 1.9.1 gave {RECORDED[case.__name__]}"


@needs_mxnet
def test_live_mxnet_gives_the_recorded_answers():
    proc = subprocess.run([MXNET_PYTHON, os.path.join(HERE, "gluon_v1_cases.py"), "mxnet"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    live = json.loads(proc.stdout.strip().splitlines()[-1])
    for name, answer in RECORDED.items():
        assert _same(live[name], answer), f"{name}: MXNet now gives {live[name]}, recorded {answer}"
