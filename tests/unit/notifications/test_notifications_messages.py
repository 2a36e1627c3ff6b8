"""Unit tests of the templates (one per event kind and channel) and of webhook signatures."""

from datetime import UTC, datetime
from typing import Any

import pytest
from jinja2 import UndefinedError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from services.notifications.domain import EventKind, Language
from services.notifications.messages import (
    TEMPLATES,
    new_webhook_secret,
    render_email,
    render_inbox,
    webhook_body,
    webhook_headers,
)

ENROLMENT = {
    "child_name": "Giulia <b>Rossi</b>",
    "offering_title": "Spazio compiti DSA",
    "period_start": "25/03/2027",
    "period_end": "30/03/2027",
    "position": 3,
    "reason": None,
}
CONTEXTS: dict[EventKind, dict[str, Any]] = {
    EventKind.ENROLMENT_CONFIRMED: ENROLMENT,
    EventKind.ENROLMENT_WAITLISTED: ENROLMENT,
    EventKind.ENROLMENT_PROMOTED: ENROLMENT,
    EventKind.ENROLMENT_CANCELLED: {**ENROLMENT, "reason": "rinuncia"},
    EventKind.ENROLMENT_REFUSED: {**ENROLMENT, "reasons": ["Età fuori dai limiti", "Bisogni non supportati"]},
    EventKind.OFFERING_PUBLISHED: {"offering_title": "Centro estivo", "offering_type": "centro estivo"},
    EventKind.MEMBERSHIP_FORMALIZED: {"partner_name": "Coop. Totem", "alliance_name": "Castellanza WLB"},
}


@pytest.mark.parametrize("kind", list(EventKind))
@pytest.mark.parametrize("language", list(Language))
def test_every_kind_has_email_and_inbox_templates(kind: EventKind, language: Language) -> None:
    for suffix in ("email.txt", "email.html", "inbox.txt"):
        assert (TEMPLATES / language.value / f"{kind.value}.{suffix}").is_file()
    email = render_email(kind, language, CONTEXTS[kind])
    inbox = render_inbox(kind, language, CONTEXTS[kind])
    assert email.subject and "\n" not in email.subject
    assert email.text.strip()
    assert email.html.startswith("<!doctype html>")
    assert inbox.title == email.subject
    assert inbox.body


def test_italian_email_of_a_confirmation() -> None:
    email = render_email(EventKind.ENROLMENT_CONFIRMED, Language.IT, ENROLMENT)
    assert email.subject == "Iscrizione confermata: Giulia <b>Rossi</b>, «Spazio compiti DSA»"
    assert "è confermata, dal 25/03/2027 al 30/03/2027" in email.text
    assert 'lang="it"' in email.html


def test_html_is_autoescaped_and_plain_text_is_not() -> None:
    email = render_email(EventKind.ENROLMENT_CONFIRMED, Language.IT, ENROLMENT)
    assert "Giulia &lt;b&gt;Rossi&lt;/b&gt;" in email.html
    assert "<b>Rossi</b>" not in email.html
    assert "Giulia <b>Rossi</b>" in email.text


def test_cancellation_reason_is_optional_but_must_be_given() -> None:
    with_reason = render_inbox(EventKind.ENROLMENT_CANCELLED, Language.IT, {**ENROLMENT, "reason": "rinuncia"})
    assert "Motivo: rinuncia." in with_reason.body
    without = render_inbox(EventKind.ENROLMENT_CANCELLED, Language.IT, ENROLMENT)
    assert "Motivo" not in without.body


@pytest.mark.parametrize("kind", list(EventKind))
def test_a_missing_variable_fails_loudly(kind: EventKind) -> None:
    with pytest.raises(UndefinedError):
        render_email(kind, Language.IT, {})
    with pytest.raises(UndefinedError):
        render_inbox(kind, Language.IT, {})


def test_english_templates() -> None:
    inbox = render_inbox(EventKind.ENROLMENT_WAITLISTED, Language.EN, ENROLMENT)
    assert inbox.title.startswith("Waiting list")
    assert "position 3" in inbox.body


def test_webhook_signature_verifies_with_the_standard_webhooks_verifier() -> None:
    secret = new_webhook_secret()
    assert secret.startswith("whsec_")
    body = webhook_body(EventKind.ENROLMENT_CONFIRMED, "e1", datetime(2027, 3, 1, tzinfo=UTC), {"enrolment_id": "x"})
    headers = webhook_headers(secret, "msg_1", body, datetime.now(UTC))
    assert headers["webhook-signature"].startswith("v1,")
    payload = Webhook(secret).verify(body, headers)
    assert payload["type"] == "enrolment.confirmed"
    assert payload["data"] == {"enrolment_id": "x"}


def test_a_tampered_body_or_another_secret_does_not_verify() -> None:
    secret = new_webhook_secret()
    body = webhook_body(EventKind.OFFERING_PUBLISHED, "e1", datetime(2027, 3, 1, tzinfo=UTC), {})
    headers = webhook_headers(secret, "msg_1", body, datetime.now(UTC))
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace("e1", "e2"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_webhook_secret()).verify(body, headers)


def test_a_refusal_lists_every_reason() -> None:
    context = {**ENROLMENT, "reasons": ["Età fuori dai limiti del servizio.", "Il servizio non segue la DSA."]}
    email = render_email(EventKind.ENROLMENT_REFUSED, Language.IT, context)
    assert email.subject.startswith("Richiesta respinta")
    assert (
        "- Età fuori dai limiti del servizio." in email.text and "<li>Il servizio non segue la DSA.</li>" in email.html
    )
    inbox = render_inbox(EventKind.ENROLMENT_REFUSED, Language.IT, context)
    assert "Età fuori dai limiti del servizio.; Il servizio non segue la DSA." in inbox.body
