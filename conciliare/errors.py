"""Domain errors that cross RPC as typed errors.

A service raises one of these; nameko serialises it as ``exc_type`` + ``exc_args``; the
gateway maps ``exc_type`` to an HTTP status in one table (``gateway/errors.py``). The
first argument is the human message (Italian), the second a list of field errors.
"""

from typing import Any, TypedDict


class FieldError(TypedDict):
    field: str
    message: str


class DomainError(Exception):
    """Base class: a request the domain refuses, with a message for the user."""

    def __init__(self, detail: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(detail, errors or [])
        self.detail = detail
        self.errors: list[FieldError] = errors or []

    @classmethod
    def from_rpc(cls, exc_args: list[Any]) -> "DomainError":
        detail = str(exc_args[0]) if exc_args else ""
        errors = exc_args[1] if len(exc_args) > 1 and isinstance(exc_args[1], list) else []
        return cls(detail, errors)


class NotFound(DomainError):
    """The thing does not exist, or the caller may not know that it does."""


class Conflict(DomainError):
    """The request contradicts what is stored (duplicate, second capofila, ...)."""


class ValidationFailed(DomainError):
    """The payload is well-formed JSON but breaks a domain rule."""


class Forbidden(DomainError):
    """The caller is known but may not do this."""


DOMAIN_ERRORS: dict[str, type[DomainError]] = {
    cls.__name__: cls for cls in (NotFound, Conflict, ValidationFailed, Forbidden)
}


def validation_failed_from_pydantic(exc: Any, prefix: str = "") -> ValidationFailed:
    """Turn a pydantic ``ValidationError`` into a ``ValidationFailed`` with field errors."""
    errors: list[FieldError] = []
    for item in exc.errors():
        loc = ".".join(str(part) for part in item.get("loc", ()) if part != "__root__")
        field = f"{prefix}{loc}" if loc else prefix.rstrip(".") or "body"
        message = str(item.get("msg", "valore non valido"))
        message = message.removeprefix("Value error, ")
        errors.append({"field": field, "message": message})
    return ValidationFailed("I dati inviati non sono validi.", errors)
