"""Building blocks every contract shares: events, pages, money."""

from datetime import UTC, datetime
from typing import Annotated, ClassVar, Generic, TypeVar
from uuid import uuid4

from pydantic import BaseModel, ConfigDict, Field

# Money is always an integer number of euro cents: no float ever touches an amount.
Cents = Annotated[int, Field(ge=0, le=10_000_000_000, description="Importo in centesimi di euro")]
IstatCode = Annotated[str, Field(pattern=r"^\d{6}$", description="Codice ISTAT del Comune")]
EntityId = Annotated[str, Field(min_length=1, max_length=64)]


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid4().hex


class Contract(BaseModel):
    """Strict base: unknown fields are errors, so a typo never disappears silently."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class IntegrationEvent(Contract):
    """Envelope of every event: consumers de-duplicate on ``event_id``."""

    event_type: ClassVar[str]
    event_id: str = Field(default_factory=new_id)
    occurred_at: datetime = Field(default_factory=utc_now)
    schema_version: int = 1
    alliance_id: str


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list, with the total so clients can paginate."""

    items: list[T]
    total: int
    limit: int
    offset: int


class PageRequest(Contract):
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0)
