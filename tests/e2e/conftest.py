"""The running stack, started once per test session, isolated from `make run`.

The stack gets its own RabbitMQ virtual host and its own database prefix, so it
can run beside a `make run` stack on the same servers without either seeing the
other's messages or data.
"""

import json
import os
import secrets
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from pymongo import MongoClient

from conciliare.demo.data import CASTELLANZA, MARNATE
from tests.e2e.builders import build_alliance, register_demo_partners, unique

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Stack:
    url: str
    env: dict[str, str]
    _tokens: dict[str, str] = field(default_factory=dict)

    def admin(self, *args: str, secret: str) -> None:
        """Run the gateway's operator CLI against this stack's identity store."""
        subprocess.run(
            [sys.executable, "-m", "gateway.admin", *args],
            input=secret + "\n",
            text=True,
            env=self.env,
            cwd=ROOT,
            check=True,
            capture_output=True,
        )

    def children(self) -> dict[str, Any]:
        """The supervisor's children of this stack, by name (``scripts/stack.py status --json``)."""
        status = subprocess.run(
            [sys.executable, "scripts/stack.py", "status", "--json"],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        children: dict[str, Any] = json.loads(status.stdout)["children"]
        return children

    def user(
        self,
        username: str,
        role: str,
        *,
        alliances: tuple[str, ...] = (),
        partner: str | None = None,
        household: str | None = None,
    ) -> httpx.Client:
        """Create (or reset) a user and return an HTTP client logged in as that user."""
        password = secrets.token_urlsafe(12)
        args = ["user", username, "--role", role, "--password-stdin"]
        for alliance in alliances:
            args += ["--alliance", alliance]
        if partner:
            args += ["--partner", partner]
        if household:
            args += ["--household", household]
        self.admin(*args, secret=password)
        response = httpx.post(
            f"{self.url}/v1/auth/token", data={"grant_type": "password", "username": username, "password": password}
        )
        response.raise_for_status()
        return self.client(response.json()["access_token"])

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    api = os.environ.get("RABBIT_MANAGEMENT_URI", "http://guest:guest@127.0.0.1:15672")
    vhost = f"e2e-{uuid.uuid4().hex[:8]}"
    prefix = f"e2e{uuid.uuid4().hex[:8]}_"
    management = httpx.Client(base_url=f"{api}/api")
    management.put(f"/vhosts/{quote(vhost, safe='')}").raise_for_status()
    management.put(
        f"/permissions/{quote(vhost, safe='')}/guest", json={"configure": ".*", "write": ".*", "read": ".*"}
    ).raise_for_status()
    port = _free_port()
    run_dir = ROOT / ".run" / vhost
    env = {
        **os.environ,
        "AMQP_URI": f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
        "MONGO_DB_PREFIX": prefix,
        "GATEWAY_PORT": str(port),
        "GATEWAY_JWT_SECRET": secrets.token_urlsafe(32),
        "CONCILIARE_RUN_DIR": str(run_dir),
        "OTEL_TRACES_EXPORTER": "zipkin",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    started = subprocess.run(
        [sys.executable, "scripts/stack.py", "start", "--timeout", "120"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if started.returncode != 0:
        logs = "\n".join(f"== {p.name}\n{p.read_text()[-3000:]}" for p in (run_dir / "logs").glob("*.log"))
        subprocess.run([sys.executable, "scripts/stack.py", "stop"], env=env, cwd=ROOT)
        pytest.fail(f"stack did not start:\n{started.stdout}\n{started.stderr}\n{logs}")
    try:
        yield Stack(url=f"http://127.0.0.1:{port}", env=env)
    finally:
        subprocess.run([sys.executable, "scripts/stack.py", "stop"], env=env, cwd=ROOT, capture_output=True)
        management.delete(f"/vhosts/{quote(vhost, safe='')}")
        mongo: MongoClient[dict[str, Any]] = MongoClient(os.environ["MONGO_URI"])
        for name in mongo.list_database_names():
            if name.startswith(prefix):
                mongo.drop_database(name)
        mongo.close()


@pytest.fixture(scope="session")
def admin(stack: Stack) -> httpx.Client:
    return stack.user("e2e.admin", "platform_admin")


# Module-scoped: each test module builds its own alliances under fresh codes.
@pytest.fixture(scope="module")
def partner_ids(admin: httpx.Client) -> dict[str, str]:
    return register_demo_partners(admin)


@pytest.fixture(scope="module")
def castellanza(admin: httpx.Client, partner_ids: dict[str, str]) -> str:
    return build_alliance(admin, CASTELLANZA, partner_ids, unique("CAST"))


@pytest.fixture(scope="module")
def marnate(admin: httpx.Client, partner_ids: dict[str, str]) -> str:
    return build_alliance(admin, MARNATE, partner_ids, unique("MARN"))


# --- tests that disturb the whole stack run last -------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "disruptive: stops the broker or kills processes of the stack; runs after every other test"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Move ``disruptive`` tests to the end, keeping the order of everything else."""
    calm = [item for item in items if item.get_closest_marker("disruptive") is None]
    disruptive = [item for item in items if item.get_closest_marker("disruptive") is not None]
    items[:] = calm + disruptive
