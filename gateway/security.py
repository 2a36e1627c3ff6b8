"""Who is calling: password and secret hashing, JWT access tokens, the principal."""

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel, Field

from conciliare.contracts.identity import Role as Role
from gateway.settings import GatewaySettings

_hasher = PasswordHasher()
# Verifying against this when the user does not exist keeps timing uniform, so
# response time does not reveal which usernames exist.
_DUMMY_HASH = _hasher.hash("conciliare-timing-guard")


# What each role may ever do; a client-credentials token may get fewer scopes.
ROLE_SCOPES: dict[Role, frozenset[str]] = {
    Role.PLATFORM_ADMIN: frozenset(
        {
            "alliances:read",
            "alliances:write",
            "partners:read",
            "partners:write",
            "projects:read",
            "projects:write",
            "catalog:read",
            "catalog:write",
            "enrolments:read",
            "enrolments:write",
            "attendance:read",
            "attendance:write",
            "households:read",
            "households:write",
            "programmes:read",
            "programmes:write",
            "applications:read",
            "applications:write",
            "vouchers:read",
            "vouchers:write",
            "ledger:read",
            "inbox:read",
            "inbox:write",
            "webhooks:read",
            "webhooks:write",
            "deliveries:read",
        }
    ),
    Role.ALLIANCE_MANAGER: frozenset(
        {
            "alliances:read",
            "alliances:write",
            "partners:read",
            "partners:write",
            "projects:read",
            "projects:write",
            "catalog:read",
            "catalog:write",
            "enrolments:read",
            "attendance:read",
            "programmes:read",
            "programmes:write",
            "applications:read",
            "applications:write",
            "vouchers:read",
            "vouchers:write",
            "ledger:read",
            "inbox:read",
            "inbox:write",
            "deliveries:read",
        }
    ),
    Role.PARTNER_OPERATOR: frozenset(
        {
            "alliances:read",
            "partners:read",
            "projects:read",
            "catalog:read",
            "catalog:write",
            "enrolments:read",
            "enrolments:write",
            "attendance:read",
            "attendance:write",
            "programmes:read",
            "vouchers:read",
            "vouchers:write",
            "inbox:read",
            "inbox:write",
            "webhooks:read",
            "webhooks:write",
        }
    ),
    Role.FAMILY: frozenset(
        {
            "alliances:read",
            "catalog:read",
            "enrolments:read",
            "enrolments:write",
            "households:read",
            "households:write",
            "programmes:read",
            "applications:read",
            "applications:write",
            "vouchers:read",
            "inbox:read",
            "inbox:write",
        }
    ),
}


class Principal(BaseModel):
    """The authenticated caller, as read from a verified access token."""

    subject: str
    role: Role
    scopes: frozenset[str]
    alliance_ids: list[str] = Field(default_factory=list)
    partner_id: str | None = None
    household_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.PLATFORM_ADMIN


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


def verify_secret(secret_hash: str | None, secret: str) -> bool:
    try:
        return _hasher.verify(secret_hash or _DUMMY_HASH, secret) and secret_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def issue_token(principal: Principal, settings: GatewaySettings) -> tuple[str, int]:
    now = datetime.now(UTC)
    ttl = timedelta(minutes=settings.access_token_minutes)
    claims: dict[str, Any] = {
        "iss": settings.jwt_issuer,
        "sub": principal.subject,
        "iat": now,
        "exp": now + ttl,
        "jti": uuid4().hex,
        "role": principal.role.value,
        "scope": " ".join(sorted(principal.scopes)),
        "alliances": principal.alliance_ids,
        "partner": principal.partner_id,
        "household": principal.household_id,
    }
    token = jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")
    return token, int(ttl.total_seconds())


def read_token(token: str, settings: GatewaySettings) -> Principal:
    """Verify signature, expiry and issuer; raises ``jwt.InvalidTokenError``."""
    claims = jwt.decode(
        token,
        settings.jwt_secret.get_secret_value(),
        algorithms=["HS256"],
        issuer=settings.jwt_issuer,
        options={"require": ["exp", "iat", "sub", "role"]},
    )
    return Principal(
        subject=claims["sub"],
        role=Role(claims["role"]),
        scopes=frozenset(str(claims.get("scope", "")).split()),
        alliance_ids=list(claims.get("alliances") or []),
        partner_id=claims.get("partner"),
        household_id=claims.get("household"),
    )
