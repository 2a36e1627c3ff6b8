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


class Unavailable(DomainError):
    """A service this one depends on is away: the caller may retry later."""


DOMAIN_ERRORS: dict[str, type[DomainError]] = {
    cls.__name__: cls for cls in (NotFound, Conflict, ValidationFailed, Forbidden, Unavailable)
}


def as_registered(error: DomainError) -> DomainError:
    """``error`` as the nearest class callers know by name, with the same message and fields."""
    if type(error).__name__ in DOMAIN_ERRORS:
        return error
    for cls in type(error).__mro__:
        if cls.__name__ in DOMAIN_ERRORS and DOMAIN_ERRORS[cls.__name__] is cls:
            return cls(error.detail, error.errors)
    return DomainError(error.detail, error.errors)


# Pydantic's built-in messages are English; users read Italian. Custom rules already
# raise Italian messages, which pass through unchanged.
_ITALIAN_MESSAGES: dict[str, str] = {
    "missing": "campo obbligatorio",
    "extra_forbidden": "campo non previsto",
    "string_type": "deve essere un testo",
    "string_too_short": "deve avere almeno {min_length} caratteri",
    "string_too_long": "può avere al massimo {max_length} caratteri",
    "string_pattern_mismatch": "formato non valido",
    "too_short": "deve contenere almeno {min_length} elementi",
    "too_long": "può contenere al massimo {max_length} elementi",
    "int_parsing": "deve essere un numero intero",
    "int_type": "deve essere un numero intero",
    "int_from_float": "deve essere un numero intero",
    "float_parsing": "deve essere un numero",
    "bool_parsing": "deve essere vero o falso",
    "greater_than": "deve essere maggiore di {gt}",
    "greater_than_equal": "deve essere maggiore o uguale a {ge}",
    "less_than": "deve essere minore di {lt}",
    "less_than_equal": "deve essere minore o uguale a {le}",
    "enum": "valore non ammesso: scegli tra {expected}",
    "literal_error": "valore non ammesso: scegli tra {expected}",
    "date_parsing": "data non valida (formato AAAA-MM-GG)",
    "date_from_datetime_parsing": "data non valida (formato AAAA-MM-GG)",
    "date_type": "data non valida (formato AAAA-MM-GG)",
    "datetime_parsing": "data e ora non valide (formato ISO 8601)",
    "time_parsing": "orario non valido (formato HH:MM)",
    "list_type": "deve essere una lista",
    "dict_type": "deve essere un oggetto",
    "model_type": "deve essere un oggetto",
    "json_invalid": "JSON non valido",
    "uuid_parsing": "identificativo non valido",
}


def italian_message(error: Any) -> str:
    """The Italian text of one pydantic error (dict from ``ValidationError.errors()``)."""
    template = _ITALIAN_MESSAGES.get(str(error.get("type", "")))
    if template is None:
        return str(error.get("msg", "valore non valido")).removeprefix("Value error, ")
    try:
        return template.format(**(error.get("ctx") or {}))
    except (KeyError, IndexError):
        return template


def validation_failed_from_pydantic(exc: Any, prefix: str = "") -> ValidationFailed:
    """Turn a pydantic ``ValidationError`` into a ``ValidationFailed`` with field errors."""
    errors: list[FieldError] = []
    for item in exc.errors():
        loc = ".".join(str(part) for part in item.get("loc", ()) if part != "__root__")
        field = f"{prefix}{loc}" if loc else prefix.rstrip(".") or "body"
        errors.append({"field": field, "message": italian_message(item)})
    return ValidationFailed("I dati inviati non sono validi.", errors)
