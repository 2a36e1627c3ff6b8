"""Dependency providers of the notifications service: its database, its channels, its look-ups."""

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import eventlet
from nameko.exceptions import RemoteError, UnknownService
from nameko.extensions import DependencyProvider
from nameko.rpc import ServiceRpc

from conciliare.chassis.mongo import MongoRepositoryProvider
from conciliare.contracts.common import utc_now
from conciliare.contracts.identity import Role, Viewer
from conciliare.errors import Unavailable
from services.notifications.domain import RetryPolicy
from services.notifications.outbound import SmtpSender, WebhookPoster
from services.notifications.repository import NotificationsRepository, ensure_indexes
from services.notifications.settings import NotificationSettings, load_settings
from services.notifications.usecases import Ports

log = logging.getLogger(__name__)

REMOTE_TIMEOUT_SECONDS = 5.0
# How this service asks the owners of recipient data: as the platform operator,
# which reads households and enrolments without children's needs.
SYSTEM_VIEWER = Viewer(subject="service:notifications", role=Role.PLATFORM_ADMIN).model_dump(mode="json")


class NotificationsStore(MongoRepositoryProvider[NotificationsRepository]):
    def __init__(self) -> None:
        super().__init__("notifications", NotificationsRepository, ensure_indexes)


class Outbound(DependencyProvider):  # type: ignore[misc]
    """SMTP and webhook senders with the retry policy, from settings (nameko config overrides)."""

    settings: NotificationSettings
    poster: WebhookPoster | None = None

    def setup(self) -> None:
        self.settings = load_settings(self.container.config.get("NOTIFICATIONS"))
        self.poster = WebhookPoster(self.settings)
        self.sender = SmtpSender(self.settings)

    def stop(self) -> None:
        if self.poster is not None:
            self.poster.close()
            self.poster = None
        self.sender.close()

    def get_dependency(self, worker_ctx: Any) -> Ports:
        assert self.poster is not None, "provider not set up"
        s = self.settings
        return Ports(
            send_email=self.sender,
            post_webhook=self.poster,
            now=utc_now,
            policy=RetryPolicy(
                max_attempts=s.retry_max_attempts,
                base=timedelta(seconds=s.retry_base_seconds),
                factor=s.retry_factor,
                cap=timedelta(seconds=s.retry_cap_seconds),
            ),
        )


class RemoteReader:
    """One read of another service by RPC: ``None`` when it answers "not found".

    A service that is away or late raises ``Unavailable``: the event that needed the
    data goes back to its queue and is tried again, nothing is sent half-informed.
    """

    def __init__(self, client: Any, method: str, build: Callable[[str], dict[str, Any]]) -> None:
        self._client = client
        self._method = method
        self._build = build

    def __call__(self, key: str) -> dict[str, Any] | None:
        try:
            with eventlet.Timeout(REMOTE_TIMEOUT_SECONDS):
                answer = getattr(self._client, self._method)(**self._build(key))
        except RemoteError as exc:
            if exc.exc_type in ("NotFound", "Forbidden"):
                return None
            raise Unavailable(f"{self._method}: {exc.exc_type}") from None
        except (eventlet.Timeout, UnknownService) as exc:
            log.warning("%s(%s) unavailable: %s", self._method, key, type(exc).__name__)
            raise Unavailable(f"{self._method} non disponibile") from None
        return dict(answer)


class Remote(ServiceRpc):  # type: ignore[misc]
    """An RPC client of another service; its requests also expire in the broker."""

    def __init__(self, service: str) -> None:
        super().__init__(service, expiration=REMOTE_TIMEOUT_SECONDS)
