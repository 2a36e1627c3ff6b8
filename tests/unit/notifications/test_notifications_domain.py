"""Unit tests of the notifications rules: recipients, preferences, retries, states."""

from datetime import UTC, datetime, timedelta

import pytest

from conciliare.errors import Conflict, ValidationFailed
from services.notifications.domain import (
    Channel,
    DeliveryStatus,
    EventKind,
    Language,
    Notice,
    RetryPolicy,
    SubscriptionRule,
    attempt_failed,
    audience,
    channels_for,
    check_event_kinds,
    check_webhook_url,
    choose_preferences,
    default_preferences,
    delivery_id,
    queued,
    requeued,
    subscribed,
    succeeded,
    webhook_message_id,
)

NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)


def notice(kind: EventKind, household: str | None = "h1", partner: str | None = "p1") -> Notice:
    return Notice(
        kind=kind, event_id="e1", alliance_id="a1", occurred_at=NOW, household_id=household, partner_id=partner
    )


@pytest.mark.parametrize(
    "kind",
    [
        EventKind.ENROLMENT_CONFIRMED,
        EventKind.ENROLMENT_WAITLISTED,
        EventKind.ENROLMENT_PROMOTED,
        EventKind.ENROLMENT_CANCELLED,
    ],
)
def test_enrolment_outcomes_reach_the_household_and_the_provider(kind: EventKind) -> None:
    result = audience(notice(kind))
    assert result.recipients == ("household:h1", "partner:p1")
    assert result.integrator_partner_id == "p1"


def test_enrolment_event_without_household_is_refused() -> None:
    with pytest.raises(ValidationFailed):
        audience(notice(EventKind.ENROLMENT_CONFIRMED, household=None))


def test_offering_published_reaches_the_alliance_staff_and_the_provider_integrators() -> None:
    result = audience(notice(EventKind.OFFERING_PUBLISHED, household=None))
    assert result.recipients == ("alliance:a1",)
    assert result.integrator_partner_id == "p1"


def test_membership_formalized_reaches_the_partner_and_the_alliance_staff() -> None:
    result = audience(notice(EventKind.MEMBERSHIP_FORMALIZED, household=None))
    assert result.recipients == ("partner:p1", "alliance:a1")


def test_default_preferences_per_kind_of_recipient() -> None:
    assert default_preferences("household:h1").channels == {Channel.EMAIL, Channel.INBOX}
    assert default_preferences("alliance:a1").channels == {Channel.INBOX}
    assert default_preferences("household:h1").language is Language.IT
    with pytest.raises(ValidationFailed):
        default_preferences("nobody:1")
    with pytest.raises(ValidationFailed):
        default_preferences("household:")


def test_outcomes_cannot_be_muted() -> None:
    current = default_preferences("household:h1")
    with pytest.raises(ValidationFailed) as raised:
        choose_preferences(current, ["inbox"], ["enrolment.confirmed"], "it")
    assert raised.value.errors[0]["field"] == "muted_event_kinds"


def test_muted_kinds_and_channels_are_respected_but_outcomes_always_reach_la_posta() -> None:
    prefs = choose_preferences(default_preferences("partner:p1"), ["email"], ["membership.formalized"], "en")
    assert prefs.language is Language.EN
    assert channels_for(prefs, EventKind.MEMBERSHIP_FORMALIZED) == []
    assert channels_for(prefs, EventKind.OFFERING_PUBLISHED) == [Channel.EMAIL]
    assert channels_for(prefs, EventKind.ENROLMENT_CONFIRMED) == [Channel.EMAIL, Channel.INBOX]


def test_preferences_refuse_unknown_values_and_no_channel() -> None:
    current = default_preferences("household:h1")
    with pytest.raises(ValidationFailed) as raised:
        choose_preferences(current, ["fax", "webhook"], ["nothing"], "de")
    fields = [e["field"] for e in raised.value.errors]
    assert fields == ["channels", "channels", "muted_event_kinds", "language"]
    with pytest.raises(ValidationFailed):
        choose_preferences(current, [], [], "it")


def test_subscriptions_match_partner_kind_and_activity() -> None:
    rules = [
        SubscriptionRule("s1", "p1", frozenset({"enrolment.confirmed"}), True),
        SubscriptionRule("s2", "p1", frozenset({"*"}), True),
        SubscriptionRule("s3", "p1", frozenset({"enrolment.confirmed"}), False),
        SubscriptionRule("s4", "p2", frozenset({"enrolment.confirmed"}), True),
        SubscriptionRule("s5", "p1", frozenset({"offering.published"}), True),
    ]
    matched = subscribed(rules, notice(EventKind.ENROLMENT_CONFIRMED), "p1")
    assert [r.id for r in matched] == ["s1", "s2"]
    assert subscribed(rules, notice(EventKind.ENROLMENT_CONFIRMED), None) == []


def test_event_kinds_and_urls_of_subscriptions_are_checked() -> None:
    assert check_event_kinds(["enrolment.confirmed", "enrolment.confirmed", "*"]) == ["*", "enrolment.confirmed"]
    with pytest.raises(ValidationFailed):
        check_event_kinds(["enrolment.exploded"])
    assert check_webhook_url("https://gestionale.example/hook")
    assert check_webhook_url("http://127.0.0.1:9999/hook")
    with pytest.raises(ValidationFailed):
        check_webhook_url("http://gestionale.example/hook")


def test_delivery_ids_are_deterministic_per_event_recipient_and_channel() -> None:
    assert delivery_id("e1", "household:h1", Channel.EMAIL) == "e1:household:h1:email"
    assert delivery_id("e1", "household:h1", Channel.EMAIL) != delivery_id("e1", "household:h1", Channel.INBOX)
    assert webhook_message_id("x") == webhook_message_id("x")
    assert webhook_message_id("x").startswith("msg_")


def test_retry_schedule_is_exponential_and_capped() -> None:
    policy = RetryPolicy(max_attempts=10, base=timedelta(seconds=30), factor=2, cap=timedelta(minutes=5))
    assert [policy.delay(n).total_seconds() for n in range(1, 6)] == [30, 60, 120, 240, 300]


def test_state_machine_queued_to_sent() -> None:
    state = succeeded(queued())
    assert state.status is DeliveryStatus.SENT
    assert state.attempts == 1
    with pytest.raises(Conflict):
        succeeded(state)


def test_state_machine_retries_then_fails_after_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3, base=timedelta(seconds=10))
    state = attempt_failed(queued(), "500", NOW, policy)
    assert state.status is DeliveryStatus.QUEUED
    assert state.next_attempt_at == NOW + timedelta(seconds=10)
    state = attempt_failed(state, "500", NOW, policy)
    assert state.next_attempt_at == NOW + timedelta(seconds=20)
    state = attempt_failed(state, "timeout", NOW, policy)
    assert state.status is DeliveryStatus.FAILED
    assert state.attempts == 3
    assert state.last_error == "timeout"
    assert state.next_attempt_at is None
    with pytest.raises(Conflict):
        attempt_failed(state, "again", NOW, policy)


def test_a_failed_delivery_can_be_requeued_by_hand_but_not_a_queued_one() -> None:
    failed = attempt_failed(queued(), "x", NOW, RetryPolicy(max_attempts=1))
    again = requeued(failed, NOW)
    assert again.status is DeliveryStatus.QUEUED
    assert again.next_attempt_at == NOW
    with pytest.raises(Conflict):
        requeued(again, NOW)


def test_a_refusal_is_told_to_the_household_only() -> None:
    result = audience(notice(EventKind.ENROLMENT_REFUSED))
    assert result.recipients == ("household:h1",)
    with pytest.raises(ValidationFailed):
        audience(notice(EventKind.ENROLMENT_REFUSED, household=None))
