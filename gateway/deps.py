"""FastAPI dependencies: the RPC client, the identity store, the caller and its tenancy."""

import math
from collections.abc import Callable, Coroutine, Iterator
from functools import lru_cache
from typing import Annotated, Any, Final

import jwt
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from conciliare.errors import FieldError, ValidationFailed
from gateway.errors import ProblemError
from gateway.identity import IdentityStore
from gateway.intake import EnrolmentIntake
from gateway.receipts import ReceiptIssuer
from gateway.rpc import RpcClient
from gateway.security import Principal, Role, read_token
from gateway.settings import GatewaySettings, get_gateway_settings

NOT_FOUND = ProblemError(404, "Risorsa non trovata", "Alleanza non trovata.")

# The largest integer MongoDB (BSON int64) stores: beyond it a service fails to store or
# even query the value, which would be a 500.
INT64_MAX: Final = 2**63 - 1
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})

_bearer = OAuth2PasswordBearer(tokenUrl="/v1/auth/token", auto_error=False)


async def get_rpc(request: Request) -> RpcClient:
    client: RpcClient = request.app.state.rpc
    return client


async def get_identity(request: Request) -> IdentityStore:
    store: IdentityStore = request.app.state.identity
    return store


async def get_intake(request: Request) -> EnrolmentIntake:
    intake: EnrolmentIntake = request.app.state.intake
    return intake


Rpc = Annotated[RpcClient, Depends(get_rpc)]
Identity = Annotated[IdentityStore, Depends(get_identity)]
Intake = Annotated[EnrolmentIntake, Depends(get_intake)]


async def settings_dependency() -> GatewaySettings:
    return get_gateway_settings()


# Every dependency is `async def`: FastAPI runs plain `def` dependencies in a
# thread pool, a hand-off that costs more than these functions themselves.
Settings = Annotated[GatewaySettings, Depends(settings_dependency)]


@lru_cache(maxsize=4)
def _receipt_issuer(secret: str) -> ReceiptIssuer:
    return ReceiptIssuer(secret.encode())


def receipt_issuer(settings: GatewaySettings) -> ReceiptIssuer:
    """The issuer of enrolment receipts, keyed from the gateway's secret."""
    return _receipt_issuer(settings.jwt_secret.get_secret_value())


async def get_receipts(settings: Settings) -> ReceiptIssuer:
    return receipt_issuer(settings)


Receipts = Annotated[ReceiptIssuer, Depends(get_receipts)]


def authenticate(token: str | None, settings: GatewaySettings) -> Principal:
    """The caller of a bearer ``token``; 401 (with the reason in Italian) when missing, expired or invalid."""
    challenge = {"WWW-Authenticate": "Bearer"}
    if not token:
        raise ProblemError(
            401, "Autenticazione richiesta", "Manca il token di accesso (Authorization: Bearer).", challenge
        )
    try:
        return read_token(token, settings)
    except jwt.ExpiredSignatureError:
        raise ProblemError(401, "Autenticazione richiesta", "Il token di accesso è scaduto.", challenge) from None
    except (jwt.InvalidTokenError, ValueError):
        raise ProblemError(401, "Autenticazione richiesta", "Il token di accesso non è valido.", challenge) from None


async def current_principal(token: Annotated[str | None, Depends(_bearer)], settings: Settings) -> Principal:
    return authenticate(token, settings)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def ensure_scope(principal: Principal, scope: str) -> None:
    """403 unless the caller's token carries ``scope``."""
    if scope not in principal.scopes:
        raise ProblemError(403, "Operazione non consentita", f"Il token non ha l'autorizzazione '{scope}'.")


def require_scope(scope: str) -> Callable[[Principal], Coroutine[Any, Any, Principal]]:
    """Dependency that admits only callers whose token carries ``scope``."""

    async def dependency(principal: CurrentPrincipal) -> Principal:
        ensure_scope(principal, scope)
        return principal

    return dependency


class Tenancy:
    """What alliances the caller may see or change.

    A caller that may not see an alliance gets 404, never 403: the existence of
    another tenant's data is itself not disclosed.
    """

    def __init__(self, principal: Principal, rpc: RpcClient) -> None:
        self.principal = principal
        self.rpc = rpc
        self._partner_alliances: list[str] | None = None

    async def readable_alliances(self) -> list[str] | None:
        """Alliance ids the caller may read; ``None`` means every alliance."""
        role = self.principal.role
        if role is Role.PLATFORM_ADMIN:
            return None
        if role is Role.ALLIANCE_MANAGER:
            return list(self.principal.alliance_ids)
        if role is Role.PARTNER_OPERATOR and self.principal.partner_id:
            if self._partner_alliances is None:
                # Membership is the partners service's data: asked live, so a
                # withdrawn partner loses access at once, not at token expiry.
                self._partner_alliances = await self.rpc.call(
                    "partners", "alliances_of_partner", partner_id=self.principal.partner_id
                )
            return list(self._partner_alliances or [])
        return []

    async def directory_alliances(self) -> list[str] | None:
        """Alliances whose public card (name, territory) the caller may read.

        Families see every alliance's card, to find the services of their Comune;
        members and projects stay staff-only.
        """
        if self.principal.role is Role.FAMILY:
            return None
        return await self.readable_alliances()

    async def ensure_readable(self, alliance_id: str) -> None:
        readable = await self.readable_alliances()
        if readable is not None and alliance_id not in readable:
            raise NOT_FOUND

    async def ensure_manageable(self, alliance_id: str) -> None:
        """Only the platform admin and the alliance's own managers change an alliance."""
        await self.ensure_readable(alliance_id)
        if self.principal.role not in (Role.PLATFORM_ADMIN, Role.ALLIANCE_MANAGER):
            raise ProblemError(403, "Operazione non consentita", "Solo lo staff dell'alleanza può modificarla.")


async def get_tenancy(principal: CurrentPrincipal, rpc: Rpc) -> Tenancy:
    return Tenancy(principal, rpc)


TenancyDep = Annotated[Tenancy, Depends(get_tenancy)]


async def json_numbers_fit(request: Request) -> None:
    """Refuse (422) a JSON body with a number no store can hold, before anything uses it.

    Every route depends on this (see ``gateway.main``). Bounds on each field belong to
    the contracts; this is the net under them: an integer beyond 64 bits, or the
    ``NaN``/``Infinity`` that Python's JSON parser accepts, never reaches a service.
    FastAPI has already parsed the body, so this only walks it.
    """
    if request.method not in _BODY_METHODS or "json" not in request.headers.get("content-type", ""):
        return
    if not await request.body():
        return
    try:
        body = await request.json()
    except ValueError:  # not JSON: FastAPI answers that itself
        return
    errors = list(unfit_numbers(body))
    if errors:
        raise ValidationFailed("La richiesta contiene numeri fuori dai limiti ammessi.", errors)


def unfit_numbers(document: Any) -> Iterator[FieldError]:
    """Field errors for every number in ``document`` outside 64-bit integers or not finite."""
    stack: list[tuple[tuple[str, ...], Any]] = [((), document)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            stack.extend(((*path, str(key)), item) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend(((*path, str(index)), item) for index, item in enumerate(value))
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int) and not -INT64_MAX - 1 <= value <= INT64_MAX:
            yield {"field": ".".join(path) or "body", "message": "numero fuori dai limiti ammessi"}
        elif isinstance(value, float) and not math.isfinite(value):
            yield {"field": ".".join(path) or "body", "message": "numero non valido"}
