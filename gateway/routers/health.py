"""Liveness and readiness, each naming what is down."""

import asyncio
from collections.abc import Awaitable
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from gateway.deps import Identity, Rpc, Settings
from gateway.errors import RETRY_AFTER
from gateway.openapi import EXACT_ERRORS

router = APIRouter(prefix="/v1", tags=["health"])

PROBE_TIMEOUT = 3.0


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: dict[str, str] = Field(description="Per dipendenza: `ok` oppure `down: <motivo>`")
    down: list[str] = Field(description="Le dipendenze non pronte")


@router.get("/health", response_model=Health, summary="Il gateway è vivo", openapi_extra={EXACT_ERRORS: []})
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/ready",
    response_model=Readiness,
    summary="Il gateway e tutto ciò da cui dipende sono pronti",
    responses={
        503: {
            "model": Readiness,
            "description": "Qualcosa non è pronto: `down` dice cosa",
            "headers": {"Retry-After": {"description": "Secondi dopo cui riprovare", "schema": {"type": "integer"}}},
        }
    },
    # Every failure is reported in the body: no other error status.
    openapi_extra={EXACT_ERRORS: [503]},
)
async def ready(request: Request, rpc: Rpc, identity: Identity, settings: Settings) -> JSONResponse:
    async def check(name: str, probe: Awaitable[Any]) -> tuple[str, str]:
        try:
            await asyncio.wait_for(probe, PROBE_TIMEOUT)
            return name, "ok"
        except Exception as exc:  # every failure is reported, none is raised
            return name, f"down: {type(exc).__name__}"

    probes = [check("rabbitmq", rpc.ping_broker()), check("mongodb", identity.ping())]
    probes.append(check("object_storage", request.app.state.documents.ping()))
    probes += [
        check(f"service:{name}", rpc.call(name, "ping", timeout=PROBE_TIMEOUT)) for name in settings.service_names
    ]
    results = dict(await asyncio.gather(*probes))
    down = sorted(name for name, state in results.items() if state != "ok")
    body = {"status": "ready" if not down else "not_ready", "checks": results, "down": down}
    if down:
        return JSONResponse(body, status_code=503, headers=RETRY_AFTER)
    return JSONResponse(body)
