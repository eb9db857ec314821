"""Every registered operator is tested: it has forward cases, and a finite-difference gradient
case unless it is listed as exempt with a reason. A new op without tests fails here."""
import graphc.ops as ops
from graphc.ops import get_op
from op_cases import CASES, FD_EXEMPT
from test_op_gradients import FD_CASES


def test_every_operator_has_a_forward_case():
    tested = {c.op for c in CASES}
    missing = sorted(set(ops.all_ops()) - tested)
    assert not missing, f"operators without a forward case in tests/ops/op_cases.py: {missing}"


def test_every_differentiable_operator_has_a_gradient_case_or_a_reason():
    checked = {c.op for c in FD_CASES}
    missing = []
    for name, op in ops.all_ops().items():
        if op.gradient is None or not op.input_names(op.parse(_attrs_for(name))):
            continue  # no rule (creation ops, samplers, _trigamma) or no inputs to differentiate
        if name not in checked and name not in FD_EXEMPT:
            missing.append(name)
    assert not missing, f"differentiable operators without a finite-difference case or exemption: {sorted(missing)}"


def test_exemptions_name_real_operators_with_reasons():
    for name, reason in FD_EXEMPT.items():
        get_op(name)
        assert len(reason) > 20


def test_cases_use_canonical_names():
    for c in CASES:
        assert get_op(c.op).name == c.op, f"case for alias {c.op!r}: use {get_op(c.op).name!r}"


def _attrs_for(name):
    for c in CASES:
        if c.op == name:
            return c.attrs
    return {}
