"""Parsing RPC payloads into contract models, with domain errors on bad input."""

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from conciliare.errors import validation_failed_from_pydantic

M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], payload: Any) -> M:
    """Validate ``payload`` as ``model``; a failure becomes ``ValidationFailed``.

    The gateway validates too, but a service never trusts its callers: other
    services and integrators reach it over the broker.
    """
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise validation_failed_from_pydantic(exc) from None


def dump(model: BaseModel) -> dict[str, Any]:
    """JSON-safe dict of a contract model, as it travels over RPC."""
    return model.model_dump(mode="json")


def parse_event(model: type[M], payload: Any) -> M:
    """Read an event as a tolerant reader: fields this consumer does not know are ignored.

    A producer may add a field to an event (or to a model inside it) before every
    consumer is redeployed; a strict parse would make the consumer drop the event.
    Missing or malformed fields it does need still fail.
    """
    try:
        return model.model_validate(payload, extra="ignore")
    except ValidationError as exc:
        raise validation_failed_from_pydantic(exc) from None
