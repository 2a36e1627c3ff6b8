"""Gateway configuration from environment variables."""

from functools import lru_cache

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    # Development default only: `make run` and production set GATEWAY_JWT_SECRET.
    jwt_secret: SecretStr = Field(SecretStr("dev-only-secret-change-me-0123456789abcdef"))
    jwt_issuer: str = "conciliare"
    access_token_minutes: int = Field(30, ge=1, le=24 * 60)
    idempotency_ttl_hours: int = Field(24, ge=1)
    public_url: str = "http://127.0.0.1:8000"
    # Services whose RPC ping /v1/ready checks (comma separated in the environment).
    services: str = "partners,catalog,enrolment,vouchers,notifications"

    @property
    def service_names(self) -> list[str]:
        return [name.strip() for name in self.services.split(",") if name.strip()]


@lru_cache
def get_gateway_settings() -> GatewaySettings:
    return GatewaySettings()
