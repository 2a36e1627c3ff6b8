"""Settings of the notifications service: SMTP, webhooks, retries (environment, then nameko config).

Environment variables are prefixed ``NOTIFICATIONS_`` (``NOTIFICATIONS_SMTP_HOST`` ...);
the nameko config key ``NOTIFICATIONS`` (a mapping of the same field names) overrides
them, which is how interface tests point the service at their own SMTP sink.
"""

from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class NotificationSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFICATIONS_", extra="ignore")

    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(1025, ge=1, le=65535)
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_sender: str = "Conciliare <notifiche@conciliare.local>"
    smtp_timeout_seconds: float = 10.0
    webhook_timeout_seconds: float = 5.0
    retry_max_attempts: int = Field(6, ge=1, le=50)
    retry_base_seconds: float = Field(30.0, gt=0)
    retry_factor: float = Field(2.0, ge=1)
    retry_cap_seconds: float = Field(3600.0, gt=0)


def load_settings(overrides: dict[str, Any] | None = None) -> NotificationSettings:
    return NotificationSettings(**(overrides or {}))
