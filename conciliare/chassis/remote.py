"""RPC clients of other services, as every service's dependency providers build them.

A call that no instance answers in time (absent, stopped, too slow, or an older version
without the method) is ``RemoteUnavailable``; an error the other service answered is
``RemoteRefused`` with its class name and the user's message. Use cases decide what
each means for them; ``DomainRemoteClient`` gives the usual reading: away -> 503
``Unavailable``, a domain refusal stays the same domain error.
"""

import ast
from typing import Any

import eventlet
from nameko.exceptions import MethodNotFound, RemoteError, RpcTimeout, UnknownService
from nameko.rpc import ServiceRpc

from conciliare.errors import DOMAIN_ERRORS, DomainError, Unavailable

REMOTE_TIMEOUT_SECONDS = 5.0


class RemoteUnavailable(Exception):
    """A service this one depends on did not answer (absent, stopped, too slow)."""

    def __init__(self, service: str) -> None:
        super().__init__(service)
        self.service = service


class RemoteRefused(Exception):
    """The remote answered with an error; ``exc_type`` is its class name (NotFound, ...)."""

    def __init__(self, service: str, exc_type: str, detail: str) -> None:
        super().__init__(f"{service}: {exc_type} {detail}")
        self.service = service
        self.exc_type = exc_type
        self.detail = detail

    def as_domain_error(self) -> DomainError | None:
        """The remote's refusal as the same domain error here, or None if it was no domain error.

        A domain refusal stays what it is (a remote ``Conflict`` is a ``Conflict``);
        anything else (a crash over there) is not ours to reinterpret.
        """
        cls = DOMAIN_ERRORS.get(self.exc_type)
        return None if cls is None else cls(self.detail)


def remote_detail(value: str) -> str:
    """The user's message out of a nameko ``RemoteError.value``.

    nameko sends ``str(exc)``; a domain error has two arguments (message, field
    errors), so that string is the repr of a tuple: keep only the message.
    """
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return value
    if isinstance(parsed, tuple) and parsed and isinstance(parsed[0], str):
        return parsed[0]
    return value


class RemoteClient:
    """Calls one service with a deadline; subclasses add typed methods."""

    service = ""

    def __init__(self, client: Any, timeout: float) -> None:
        self._client = client
        self._timeout = timeout

    def _call(self, method: str, **kwargs: Any) -> Any:
        try:
            with eventlet.Timeout(self._timeout):
                return getattr(self._client, method)(**kwargs)
        except (eventlet.Timeout, RpcTimeout, UnknownService, MethodNotFound):
            raise RemoteUnavailable(self.service) from None
        except RemoteError as exc:
            raise RemoteRefused(self.service, str(exc.exc_type), remote_detail(str(exc.value))) from None


class DomainRemoteClient(RemoteClient):
    """A client whose failures are already domain errors: away or crashed -> ``Unavailable``."""

    def _call(self, method: str, **kwargs: Any) -> Any:
        try:
            return super()._call(method, **kwargs)
        except RemoteUnavailable:
            raise Unavailable(f"Il servizio {self.service} non risponde: riprova tra poco.") from None
        except RemoteRefused as exc:
            error = exc.as_domain_error()
            if error is None:
                raise Unavailable(f"Il servizio {self.service} ha avuto un errore: riprova tra poco.") from None
            raise error from None


class TimedServiceRpc(ServiceRpc):  # type: ignore[misc]
    """nameko's ``ServiceRpc`` handing the worker a ``client_class`` with a deadline.

    The request also expires in the broker, so a service that was away does not
    answer stale requests when it comes back.
    """

    client_class: type[RemoteClient] = RemoteClient

    def __init__(self, target_service: str, timeout: float = REMOTE_TIMEOUT_SECONDS) -> None:
        super().__init__(target_service, expiration=timeout)
        self.timeout = timeout

    def get_dependency(self, worker_ctx: Any) -> RemoteClient:
        return self.client_class(super().get_dependency(worker_ctx), self.timeout)
