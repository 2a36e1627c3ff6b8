"""Outages, on the running stack: RabbitMQ stopped for 10 s under a trickle of writes; a process killed.

What must hold (issue 7):
- during the outage every answer is a success or a 503 with ``Retry-After``, never a 500;
- afterwards ``/v1/ready`` answers 200 again within 30 s without anyone doing anything
  (the gateway reconnects by itself; a service process that died is restarted by the
  supervisor), and writes succeed at once, with no burst of errors;
- no acknowledged write is lost: every partner answered 201 is there afterwards;
- a killed service or gateway process is restarted by the supervisor.

The broker is stopped with ``rabbitmqctl stop_app`` on our own node (the Erlang node
stays up, so ``start_app`` brings it back with its vhosts and durable queues); other
servers are not touched. These tests disturb every client of the broker, so they run
last (``disruptive``, see conftest.py) and are skipped where the node is not ours
(Docker mode, or a RabbitMQ we did not start).
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.builders import ok, partner_body
from tests.e2e.conftest import Stack

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.disruptive,
    # In Docker mode the broker is a container that this test does not manage.
    pytest.mark.skipif(
        os.environ.get("CONCILIARE_TEST_INFRA", "native") != "native", reason="the broker is a container"
    ),
]

ROOT = Path(__file__).resolve().parents[2]
OUTAGE_SECONDS = 10
READY_WITHIN_SECONDS = 30
WRITE_INTERVAL = 0.25


def rabbitmqctl(*args: str) -> subprocess.CompletedProcess[str]:
    """``rabbitmqctl`` against our own node only (scripts/infra/lib.sh's ``rabbitmqctl_ours``)."""
    script = f'source "{ROOT}/scripts/infra/lib.sh" && rabbitmqctl_ours {" ".join(args)}'
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def our_broker() -> None:
    # Natively `make test` runs our own RabbitMQ node (scripts/infra): the test stops and
    # starts it, and a node it cannot reach is a broken set-up, not a reason to pass.
    ping = rabbitmqctl("ping")
    assert ping.returncode == 0, f"our RabbitMQ node does not answer rabbitmqctl: {ping.stderr[-500:]}"


def wait_ready(stack: Stack, within: float) -> float | None:
    """Seconds until ``/v1/ready`` answers 200, or None if it does not within ``within``."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        try:
            if httpx.get(f"{stack.url}/v1/ready", timeout=5).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return None


@dataclass
class Answer:
    at: float
    status: int
    key: str
    body: dict[str, Any]
    partner_id: str | None = None
    retry_after: str | None = None
    text: str = ""


@dataclass
class Trickle:
    """Writes a new partner every ``WRITE_INTERVAL`` seconds, each with its own idempotency key."""

    client: httpx.Client
    answers: list[Answer] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            key, body = str(uuid.uuid4()), partner_body()
            at = time.monotonic()
            try:
                response = self.client.post("/v1/partners", json=body, headers={"Idempotency-Key": key}, timeout=30)
            except httpx.HTTPError as exc:  # the gateway itself must stay up
                self.answers.append(Answer(at, 0, key, body, text=repr(exc)))
            else:
                created = response.json().get("id") if response.status_code == 201 else None
                retry_after = response.headers.get("Retry-After")
                self.answers.append(Answer(at, response.status_code, key, body, created, retry_after, response.text))
            time.sleep(WRITE_INTERVAL)


def test_ten_seconds_without_the_broker(stack: Stack, admin: httpx.Client, our_broker: None) -> None:
    trickle = Trickle(stack.user(f"outage.admin.{uuid.uuid4().hex[:6]}", "platform_admin"))
    writer = threading.Thread(target=trickle.run, daemon=True)
    writer.start()
    time.sleep(2)
    stopped_at = time.monotonic()
    try:
        assert rabbitmqctl("stop_app").returncode == 0
        time.sleep(OUTAGE_SECONDS)
    finally:
        started = rabbitmqctl("start_app")
    back_at = time.monotonic()
    assert started.returncode == 0, started.stderr

    recovered_in = wait_ready(stack, READY_WITHIN_SECONDS)
    ready_at = time.monotonic()
    time.sleep(5)  # writes once ready: every one must succeed
    trickle.stop.set()
    writer.join(timeout=60)

    answers = trickle.answers
    summary = {status: sum(1 for a in answers if a.status == status) for status in sorted({a.status for a in answers})}
    print(f"\noutage: {len(answers)} writes {summary}; ready {recovered_in}s after start_app")
    print(f"supervisor: {supervisor_state(stack)}")
    assert recovered_in is not None, f"/v1/ready not 200 within {READY_WITHIN_SECONDS}s of the broker's return"

    unexpected = [a for a in answers if a.status not in (201, 503)]
    assert unexpected == [], [(round(a.at - stopped_at, 1), a.status, a.text[:200]) for a in unexpected]
    for answer in answers:
        if answer.status == 503:
            assert answer.retry_after and int(answer.retry_after) > 0
            assert "non" in json.loads(answer.text)["detail"]  # an Italian message naming what is away
    during = [a for a in answers if stopped_at <= a.at <= back_at]
    assert during and all(a.status in (201, 503) for a in during)
    assert any(a.status == 503 for a in during), "the outage did not show: was the broker stopped?"
    after = [a for a in answers if a.at >= ready_at]
    assert after and all(a.status == 201 for a in after), [(a.status, a.text[:200]) for a in after if a.status != 201]

    # No acknowledged write lost.
    for answer in answers:
        if answer.status == 201:
            assert ok(admin.get(f"/v1/partners/{answer.partner_id}"))["tax_code"] == answer.body["tax_code"]


def supervisor_state(stack: Stack) -> dict[str, Any]:
    status = subprocess.run(
        [sys.executable, "scripts/stack.py", "status", "--json"],
        env=stack.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    children: dict[str, Any] = json.loads(status.stdout)["children"]
    return children


@pytest.mark.parametrize("name", ["partners-1", "gateway"])
def test_a_killed_process_is_restarted_by_the_supervisor(stack: Stack, admin: httpx.Client, name: str) -> None:
    before = supervisor_state(stack)[name]
    assert before["pid"], before
    os.kill(before["pid"], signal.SIGKILL)

    deadline = time.monotonic() + 20
    after = before
    while time.monotonic() < deadline:
        after = supervisor_state(stack)[name]
        if after["pid"] and after["pid"] != before["pid"]:
            break
        time.sleep(0.3)
    assert after["pid"] and after["pid"] != before["pid"], after
    assert after["restarts"] == before["restarts"] + 1 and after["last_exit"] == -signal.SIGKILL

    assert wait_ready(stack, READY_WITHIN_SECONDS) is not None
    with httpx.Client(base_url=stack.url, headers=admin.headers, timeout=30) as fresh:  # no pooled connection
        ok(fresh.post("/v1/partners", json=partner_body()), 201)
