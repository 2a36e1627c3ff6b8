"""The issue's minimal acceptance endpoint, to calibrate the click-day numbers on this machine.

FastAPI with a pydantic body, an HS256 JWT check and a persistent publish with a
publisher confirm, nothing else (no tracing, no idempotency, no problem+json). Run it
beside the stack and fire the same vegeta burst at it (the targets of
``bench.click_day`` with the port changed)::

    .venv/bin/python -m uvicorn bench.acceptance_reference:app --port 8100 --workers 2 --no-access-log

It signs nothing itself: it accepts the stack's tokens (``.run/jwt_secret``).
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import aio_pika
import jwt
from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel

SECRET = (Path(__file__).resolve().parent.parent / ".run" / "jwt_secret").read_text().strip()
QUEUE = "bench-acceptance-reference"
state: dict[str, Any] = {}


class Period(BaseModel):
    start: str
    end: str


class Body(BaseModel):
    child_id: str
    offering_id: str
    period: Period
    attendance_mode: str


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    connection = await aio_pika.connect_robust("amqp://guest:guest@127.0.0.1:5672/")
    channel = await connection.channel(publisher_confirms=True)
    queue = await channel.declare_queue(QUEUE, durable=True)
    state["exchange"] = channel.default_exchange
    yield
    await queue.purge()
    await connection.close()


app = FastAPI(lifespan=lifespan)


@app.post("/v1/enrolments", status_code=202)
async def accept(body: Body, authorization: Annotated[str, Header()]) -> dict[str, str]:
    try:
        jwt.decode(authorization.split()[-1], SECRET, algorithms=["HS256"], options={"verify_aud": False})
    except jwt.InvalidTokenError as exc:
        raise HTTPException(401, str(exc)) from None
    message = aio_pika.Message(body.model_dump_json().encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
    await state["exchange"].publish(message, routing_key=QUEUE)
    return {"status": "requested"}
