"""Liveness and readiness, each naming what is down."""

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from gateway.deps import Identity, Rpc, Settings

router = APIRouter(prefix="/v1", tags=["health"])

PROBE_TIMEOUT = 3.0


@router.get("/health", summary="Il gateway è vivo")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", summary="Il gateway e tutto ciò da cui dipende sono pronti")
async def ready(request: Request, rpc: Rpc, identity: Identity, settings: Settings) -> JSONResponse:
    async def check(name: str, probe: Any) -> tuple[str, str]:
        try:
            await asyncio.wait_for(probe, PROBE_TIMEOUT)
            return name, "ok"
        except Exception as exc:  # every failure is reported, none is raised
            return name, f"down: {type(exc).__name__}"

    async def rabbitmq() -> None:
        if not rpc.connected:
            raise ConnectionError("not connected")

    probes = [check("rabbitmq", rabbitmq()), check("mongodb", identity.ping())]
    probes.append(check("object_storage", request.app.state.documents.ping()))
    probes += [
        check(f"service:{name}", rpc.call(name, "ping", timeout=PROBE_TIMEOUT)) for name in settings.service_names
    ]
    results = dict(await asyncio.gather(*probes))
    down = sorted(name for name, state in results.items() if state != "ok")
    body = {"status": "ready" if not down else "not_ready", "checks": results, "down": down}
    return JSONResponse(body, status_code=200 if not down else 503)
