"""The gateway's asyncio RPC client against the real broker and a real nameko service.

The client is asyncio and this test process runs under eventlet, so each scenario
runs in a fresh interpreter.
"""

import json
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from nameko.rpc import rpc

from conciliare.chassis.entrypoints import domain_rpc
from conciliare.errors import Conflict

pytestmark = pytest.mark.integration


class SeatsTaken(Conflict):
    """A service's own refinement, unknown to the gateway by name."""


class Slowpoke:
    name = "slowpoke"

    @rpc
    def nap(self, seconds: float) -> str:
        import eventlet

        eventlet.sleep(seconds)
        return "awake"

    @rpc
    def echo(self, value: Any) -> Any:
        return value

    @rpc
    def refuse(self) -> None:
        from conciliare.errors import Conflict

        raise Conflict("Esiste già.", [{"field": "code", "message": "duplicato"}])

    @domain_rpc
    def refuse_subtly(self) -> None:
        raise SeatsTaken("Posti esauriti.", [{"field": "offering_id", "message": "pieno"}])

    @rpc
    def crash(self) -> None:
        raise RuntimeError("secret internals")


def run_client(amqp_uri: str, body: str) -> dict[str, Any]:
    script = (
        textwrap.dedent(
            """
        import asyncio, json, sys
        from gateway.rpc import RpcClient

        async def main():
            client = RpcClient(sys.argv[1], timeout=2.0)
            await client.connect()
            out = {}
            async def attempt(name, coro):
                try:
                    out[name] = {"result": await coro}
                except Exception as exc:
                    out[name] = {"error": type(exc).__name__, "detail": getattr(exc, "detail", str(exc)),
                                 "errors": getattr(exc, "errors", None)}
        """
        )
        + textwrap.indent(textwrap.dedent(body), "    ")
        + textwrap.dedent(
            """
            await client.close()
            print(json.dumps(out))

        asyncio.run(main())
        """
        )
    )
    done = subprocess.run([sys.executable, "-c", script, amqp_uri], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_results_domain_errors_timeouts_and_missing_services(container_factory: Any, rabbit_uri: str) -> None:
    container_factory(Slowpoke, {"AMQP_URI": rabbit_uri}).start()
    out = run_client(
        rabbit_uri,
        """
        await attempt("echo", client.call("slowpoke", "echo", value={"a": [1, 2]}))
        await attempt("concurrent", asyncio.gather(*[client.call("slowpoke", "echo", value=i) for i in range(50)]))
        await attempt("refuse", client.call("slowpoke", "refuse"))
        await attempt("refuse_subtly", client.call("slowpoke", "refuse_subtly"))
        await attempt("crash", client.call("slowpoke", "crash"))
        await attempt("timeout", client.call("slowpoke", "nap", seconds=3))
        await attempt("missing", client.call("vouchers", "ping"))
        """,
    )
    assert out["echo"] == {"result": {"a": [1, 2]}}
    assert out["concurrent"] == {"result": list(range(50))}
    assert out["refuse"]["error"] == "Conflict" and out["refuse"]["errors"] == [
        {"field": "code", "message": "duplicato"}
    ]
    # A subclass a service invents reaches the client as its registered base, never a 500.
    assert out["refuse_subtly"]["error"] == "Conflict" and out["refuse_subtly"]["detail"] == "Posti esauriti."
    assert out["crash"]["error"] == "RemoteFailure" and "secret internals" not in json.dumps(out["crash"])
    assert out["timeout"]["error"] == "RpcTimeout"
    assert out["missing"]["error"] == "ServiceUnavailable"


def test_a_service_whose_instances_stopped_is_unavailable(container_factory: Any, rabbit_uri: str) -> None:
    container = container_factory(Slowpoke, {"AMQP_URI": rabbit_uri})
    container.start()
    container.stop()  # its durable queue stays, with no consumer
    out = run_client(rabbit_uri, 'await attempt("gone", client.call("slowpoke", "echo", value=1))')
    assert out["gone"]["error"] == "ServiceUnavailable"
