"""Rendering notices with the Jinja2 templates under ``templates/``, and signing webhooks.

Templates: ``templates/<language>/<event kind>.<channel>.<ext>`` with ``email.txt``
(first line: the subject), ``email.html`` (autoescaped) and ``inbox.txt`` (first
line: the title). ``StrictUndefined``: a variable the template needs and the context
lacks is an error, never an empty string. A language without its own template falls
back to Italian.

Webhooks follow the Standard Webhooks specification (``webhook-id``,
``webhook-timestamp``, ``webhook-signature: v1,<base64 HMAC-SHA256>``), signed with
the ``standardwebhooks`` package.
"""

import base64
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateNotFound, select_autoescape
from standardwebhooks.webhooks import Webhook

from services.notifications.domain import EventKind, Language

TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class EmailMessage:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class InboxMessage:
    title: str
    body: str


@lru_cache(maxsize=1)
def environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _render(kind: EventKind, suffix: str, language: Language, context: dict[str, Any]) -> str:
    env = environment()
    for lang in dict.fromkeys((language.value, Language.IT.value)):
        try:
            template = env.get_template(f"{lang}/{kind.value}.{suffix}")
        except TemplateNotFound:
            continue
        return template.render({**context, "lang": lang})
    raise TemplateNotFound(f"{kind.value}.{suffix}")


def _split_first_line(text: str) -> tuple[str, str]:
    first, _, rest = text.strip().partition("\n")
    return first.strip(), rest.strip() + "\n"


def render_email(kind: EventKind, language: Language, context: dict[str, Any]) -> EmailMessage:
    subject, text = _split_first_line(_render(kind, "email.txt", language, context))
    html = _render(kind, "email.html", language, context)
    return EmailMessage(subject=subject, text=text, html=html)


def render_inbox(kind: EventKind, language: Language, context: dict[str, Any]) -> InboxMessage:
    title, body = _split_first_line(_render(kind, "inbox.txt", language, context))
    return InboxMessage(title=title, body=body.strip())


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def webhook_body(kind: EventKind, event_id: str, occurred_at: datetime, data: dict[str, Any]) -> str:
    """The JSON body an integrator receives: ``type``, ``timestamp``, ``data``."""
    return json.dumps(
        {"type": kind.value, "event_id": event_id, "timestamp": occurred_at.isoformat(), "data": data},
        separators=(",", ":"),
        sort_keys=True,
    )


def webhook_headers(secret: str, message_id: str, body: str, now: datetime) -> dict[str, str]:
    """The three Standard Webhooks headers for ``body`` sent at ``now``."""
    timestamp = now.astimezone(UTC)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, timestamp, body),
        "content-type": "application/json",
    }
