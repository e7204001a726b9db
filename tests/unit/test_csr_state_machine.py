"""The CSR workflow's state machine as pure decisions: every (status, action) pair, four eyes, reasons, scopes."""

from __future__ import annotations

import itertools

import pytest

from scaivault_pki.errors import ApiError
from scaivault_pki.pki.csr_workflow import (
    ACTIONS,
    STATUSES,
    TRANSITIONS,
    action_scope,
    invalid_state,
    plan_transition,
)

# What the issue asks for, written out independently of the table: (status, action) -> new status (None: deleted).
ALLOWED = {
    ("pending", "approve"): "approved",
    ("pending", "reject"): "rejected",
    ("approved", "sign"): "signed",
    ("pending", "delete"): None,
    ("rejected", "delete"): None,
}
MOVES = ("approve", "reject", "sign", "delete")
PAIRS = list(itertools.product(STATUSES, MOVES))


@pytest.mark.parametrize("status,action", PAIRS, ids=[f"{s}-{a}" for s, a in PAIRS])
def test_every_status_action_pair(status, action):
    if (status, action) in ALLOWED:
        transition = plan_transition(action, status, actor="approver", requested_by="requester", reason="because")
        assert (transition.source, transition.target) == (status, ALLOWED[(status, action)])
    else:
        with pytest.raises(ApiError) as refused:
            plan_transition(action, status, actor="approver", requested_by="requester", reason="because")
        error = refused.value
        assert error.status == 409 and error.code == "invalid_state"
        assert error.details["status"] == status and status in error.message


def test_requests_are_made_pending():
    for action in ("create", "import"):
        assert plan_transition(action, None, actor="t").target == "pending"
        with pytest.raises(ApiError):
            plan_transition(action, "pending", actor="t")


def test_signed_and_rejected_are_final_except_deleting_a_rejected_one():
    for status in ("signed", "rejected"):
        leaving = [t for t in TRANSITIONS if t.source == status]
        assert [(t.action, t.target) for t in leaving] == ([("delete", None)] if status == "rejected" else [])


def test_self_approval_is_refused_by_default_and_allowed_by_the_tenant_setting():
    with pytest.raises(ApiError) as refused:
        plan_transition("approve", "pending", actor="same", requested_by="same")
    assert refused.value.status == 403 and refused.value.code == "self_approval_refused"
    assert refused.value.details["rule"] == "four_eyes"
    assert plan_transition("approve", "pending", actor="same", requested_by="same", allow_self_approval=True).target == "approved"
    assert plan_transition("approve", "pending", actor="other", requested_by="same").target == "approved"


def test_four_eyes_binds_approval_only():
    # Withdrawing (rejecting) or signing what one requested needs no second person: approval was the check.
    assert plan_transition("reject", "pending", actor="same", requested_by="same", reason="withdrawn").target == "rejected"
    assert plan_transition("sign", "approved", actor="same", requested_by="same").target == "signed"


def test_the_state_is_checked_before_the_actor():
    with pytest.raises(ApiError) as refused:
        plan_transition("approve", "signed", actor="same", requested_by="same")
    assert refused.value.code == "invalid_state"


def test_reject_needs_a_reason():
    for reason in (None, ""):
        with pytest.raises(ApiError) as refused:
            plan_transition("reject", "pending", actor="a", requested_by="b", reason=reason)
        assert refused.value.status == 400 and refused.value.details["field"] == "reason"


def test_scopes():
    assert {a: action_scope(a) for a in ACTIONS} == {
        "create": "pki:issue", "import": "pki:issue",
        "approve": "pki:admin", "reject": "pki:admin", "sign": "pki:admin", "delete": "pki:admin",
    }
    with pytest.raises(ValueError):
        action_scope("publish")
    with pytest.raises(ValueError):
        plan_transition("publish", "pending", actor="a")


def test_invalid_state_names_where_the_action_could_start():
    error = invalid_state("delete", "signed")
    assert error.details == {"status": "signed", "action": "delete", "allowed_from": ["pending", "rejected"]}
    assert "signed" in error.message and "pending or rejected" in error.message
