"""OAuth2 token endpoint: password grant for people, client credentials for integrators."""

import base64
import binascii
from typing import Annotated

from fastapi import APIRouter, Form, Header

from gateway.deps import CurrentPrincipal, Identity, Settings
from gateway.errors import ProblemError
from gateway.openapi import problem_responses
from gateway.schemas.auth import Me, TokenResponse
from gateway.security import issue_token

router = APIRouter(prefix="/v1/auth", tags=["auth"])

INVALID_CREDENTIALS = ProblemError(401, "Credenziali non valide", "Nome utente o password errati.")


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:], validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, _, secret = decoded.partition(":")
    return client_id, secret


@router.post(
    "/token",
    response_model=TokenResponse,
    summary="Ottieni un token di accesso",
    responses=problem_responses(400, 401),
)
async def token(
    identity: Identity,
    settings: Settings,
    grant_type: Annotated[str, Form(description="password | client_credentials")],
    username: Annotated[str | None, Form()] = None,
    password: Annotated[str | None, Form()] = None,
    client_id: Annotated[str | None, Form()] = None,
    client_secret: Annotated[str | None, Form()] = None,
    scope: Annotated[str | None, Form()] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> TokenResponse:
    if grant_type == "password":
        if not username or not password:
            raise ProblemError(400, "Richiesta non valida", "Per grant_type=password servono username e password.")
        principal = await identity.authenticate_user(username, password)
        if principal is None:
            raise INVALID_CREDENTIALS
    elif grant_type == "client_credentials":
        basic = _basic_credentials(authorization)
        cid, secret = basic if basic else (client_id, client_secret)
        if not cid or not secret:
            raise ProblemError(
                400, "Richiesta non valida", "Per grant_type=client_credentials servono client_id e client_secret."
            )
        requested = set(scope.split()) if scope else None
        principal = await identity.authenticate_client(cid, secret, requested)
        if principal is None:
            raise ProblemError(401, "Credenziali non valide", "client_id o client_secret errati.")
    else:
        raise ProblemError(
            400, "Richiesta non valida", f"grant_type '{grant_type}' non supportato: usa password o client_credentials."
        )
    access_token, expires_in = issue_token(principal, settings)
    return TokenResponse(access_token=access_token, expires_in=expires_in, scope=" ".join(sorted(principal.scopes)))


@router.get("/me", response_model=Me, summary="Chi sono")
async def me(principal: CurrentPrincipal) -> Me:
    return Me(
        subject=principal.subject,
        role=principal.role.value,
        scopes=sorted(principal.scopes),
        alliance_ids=principal.alliance_ids,
        partner_id=principal.partner_id,
        household_id=principal.household_id,
    )
