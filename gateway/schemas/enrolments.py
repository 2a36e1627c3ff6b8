from typing import Any

from conciliare.contracts.common import Page
from conciliare.contracts.enrolment import (
    AttendanceOut,
    AttendanceRecord,
    CancelRequest,
    EnrolmentCreate,
    EnrolmentOut,
    OfferingRoster,
)
from gateway.security import Principal

__all__ = [
    "AttendanceOut",
    "AttendanceRecord",
    "CancelRequest",
    "EnrolmentCreate",
    "EnrolmentOut",
    "EnrolmentPage",
    "OfferingRoster",
    "viewer_of",
]

EnrolmentPage = Page[EnrolmentOut]


def viewer_of(principal: Principal) -> dict[str, Any]:
    """The caller as the enrolment service's ``Viewer`` contract: it decides visibility."""
    return {
        "subject": principal.subject,
        "role": principal.role.value,
        "partner_id": principal.partner_id,
        "alliance_ids": list(principal.alliance_ids),
    }
