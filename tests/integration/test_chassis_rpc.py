"""The chassis' RPC entrypoint on a real broker: a lost reply does not kill the service."""

from typing import Any

import pytest
from kombu.exceptions import OperationalError
from nameko.exceptions import RpcTimeout
from nameko.rpc import Responder
from nameko.standalone.rpc import ClusterRpcClient

from conciliare.chassis.entrypoints import domain_rpc

pytestmark = pytest.mark.integration


class Counter:
    name = "counter"
    calls = 0

    @domain_rpc
    def bump(self) -> int:
        Counter.calls += 1
        return Counter.calls


def test_a_reply_that_cannot_be_published_leaves_the_container_running(
    container_factory: Any, rabbit_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    Counter.calls = 0
    container = container_factory(Counter, {"AMQP_URI": rabbit_uri})
    container.start()
    real_send = Responder.send_response
    failures = iter([True])

    def flaky_send(self: Responder, result: Any, exc_info: Any) -> Any:
        if next(failures, False):  # the broker drops the connection at the moment of the reply
            raise OperationalError("[Errno 111] Connection refused")
        return real_send(self, result, exc_info)

    monkeypatch.setattr(Responder, "send_response", flaky_send)
    with ClusterRpcClient(uri=rabbit_uri, timeout=2) as client:
        with pytest.raises(RpcTimeout):
            client.counter.bump()  # the work ran; only its answer was lost
        assert client.counter.bump() == 2  # same container, still serving
    assert Counter.calls == 2  # the lost-reply request was not run a second time
    assert not container._died.ready()
