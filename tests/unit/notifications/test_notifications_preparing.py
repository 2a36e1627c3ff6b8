"""Unit tests of turning consumed events into notices with their recipients' data."""

from typing import Any

from conciliare.contracts.catalog import OfferingPublished, OfferingSnapshot, SnapshotPeriod
from conciliare.contracts.enrolment import EnrolmentCancelled, EnrolmentWaitlisted
from conciliare.contracts.partners import MembershipChanged, MembershipRole, MembershipStatus
from services.notifications.domain import EventKind, Language
from services.notifications.messages import render_email, render_inbox
from services.notifications.preparing import Lookups, enrolment_notice, membership_notice, offering_notice

ENROLMENTS: dict[str, dict[str, Any]] = {
    "enr-1": {
        "child_name": "Giulia Rossi",
        "offering_title": "Spazio compiti",
        "period": {"start": "2027-03-25", "end": "2027-03-30"},
    }
}
HOUSEHOLDS: dict[str, dict[str, Any]] = {
    "hh-1": {"guardians": [{"email": "maria@example.it"}, {"email": None}, {"first_name": "Luca"}]}
}
PARTNERS: dict[str, dict[str, Any]] = {
    "pp-1": {"name": "Coop. Totem", "email": "info@totem.example.it"},
    "pp-2": {"name": "Parrocchia", "email": None},
}
ALLIANCES: dict[str, dict[str, Any]] = {"al-1": {"name": "Alleanza di Marnate"}}


def lookups() -> Lookups:
    def table(rows: dict[str, dict[str, Any]]) -> Any:
        return rows.get

    return Lookups(
        enrolment=table(ENROLMENTS), household=table(HOUSEHOLDS), partner=table(PARTNERS), alliance=table(ALLIANCES)
    )


def test_waitlisted_enrolment_has_position_addresses_and_a_renderable_context() -> None:
    event = EnrolmentWaitlisted(
        alliance_id="al-1",
        offering_id="off-1",
        enrolment_id="enr-1",
        child_id="c-1",
        household_id="hh-1",
        provider_partner_id="pp-1",
        position=3,
    )
    prepared = enrolment_notice(EventKind.ENROLMENT_WAITLISTED, event, lookups())
    assert prepared.notice.household_id == "hh-1"
    assert prepared.notice.partner_id == "pp-1"
    assert prepared.addresses == {"household:hh-1": ["maria@example.it"], "partner:pp-1": ["info@totem.example.it"]}
    assert prepared.context["period_start"] == "25/03/2027"
    assert prepared.webhook_data["status"] == "waitlisted"
    assert prepared.webhook_data["position"] == 3
    assert "child_name" not in prepared.webhook_data  # integrators get ids, not children's names
    assert "posizione 3" in render_inbox(EventKind.ENROLMENT_WAITLISTED, Language.IT, prepared.context).body


def test_cancelled_enrolment_of_an_unknown_enrolment_still_renders() -> None:
    event = EnrolmentCancelled(
        alliance_id="al-1",
        offering_id="off-1",
        enrolment_id="gone",
        child_id="c-1",
        household_id="hh-unknown",
        provider_partner_id="pp-2",
        previous_status="confirmed",
        reason="rinuncia",
    )
    prepared = enrolment_notice(EventKind.ENROLMENT_CANCELLED, event, lookups())
    assert prepared.addresses == {"household:hh-unknown": [], "partner:pp-2": []}
    email = render_email(EventKind.ENROLMENT_CANCELLED, Language.IT, prepared.context)
    assert "Motivo: rinuncia." in email.text


def test_only_a_membership_that_becomes_formalized_is_a_notice() -> None:
    def changed(status: MembershipStatus, previous: MembershipStatus | None) -> MembershipChanged:
        return MembershipChanged(
            alliance_id="al-1", partner_id="pp-1", role=MembershipRole.PARTNER, status=status, previous_status=previous
        )

    assert membership_notice(changed(MembershipStatus.PENDING, None), lookups()) is None
    assert membership_notice(changed(MembershipStatus.WITHDRAWN, MembershipStatus.FORMALIZED), lookups()) is None
    assert membership_notice(changed(MembershipStatus.FORMALIZED, MembershipStatus.FORMALIZED), lookups()) is None
    prepared = membership_notice(changed(MembershipStatus.FORMALIZED, MembershipStatus.PENDING), lookups())
    assert prepared is not None
    assert prepared.notice.kind is EventKind.MEMBERSHIP_FORMALIZED
    assert prepared.context == {"partner_name": "Coop. Totem", "alliance_name": "Alleanza di Marnate"}
    assert prepared.addresses == {"partner:pp-1": ["info@totem.example.it"]}


def test_offering_published_needs_no_look_up() -> None:
    snapshot = OfferingSnapshot(
        offering_id="off-1",
        alliance_id="al-1",
        provider_partner_id="pp-1",
        status="published",
        type="centro_estivo",
        title="Centro estivo 2027",
        comune_istat="012098",
        capacity=30,
        age_min_months=72,
        age_max_months=144,
        special_needs_supported=[],
        attendance_modes=["full"],
        periods=[SnapshotPeriod(kind="summer", start="2027-06-14", end="2027-07-30")],
        price_cents=0,
        price_unit="week",
        version=1,
    )
    prepared = offering_notice(OfferingPublished(alliance_id="al-1", offering=snapshot))
    assert prepared.context == {"offering_title": "Centro estivo 2027", "offering_type": "centro estivo"}
    assert prepared.notice.partner_id == "pp-1"
    assert prepared.webhook_data["offering_id"] == "off-1"
