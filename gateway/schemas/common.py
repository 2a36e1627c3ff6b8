"""Shapes every route shares: pagination, bounded path and query values, the problem body.

Every number and date a client sends is bounded here, before it is used: an
unbounded integer reaches MongoDB as more than 8 bytes and a year 0 breaks date
arithmetic, and either would answer 500 instead of 422.
"""

from typing import Annotated, Final

from fastapi import Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

# Paging past this many items is not browsing: narrow the search instead.
MAX_LIMIT: Final = 200
MAX_OFFSET: Final = 100_000
DEFAULT_LIMIT: Final = 50

# Months and years the platform's calendars can hold.
MIN_YEAR: Final = 2000
MAX_YEAR: Final = 2100
MONTH_PATTERN: Final = r"^(20[0-9]{2}|2100)-(0[1-9]|1[0-2])$"

# Identifiers are opaque strings the services made (``EntityId`` in the contracts).
ID_MAX_LENGTH: Final = 64


class Pagination(BaseModel):
    limit: int
    offset: int


async def pagination(
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description=f"Quanti elementi per pagina (1–{MAX_LIMIT})")
    ] = DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description=f"Quanti elementi saltare (0–{MAX_OFFSET})")] = 0,
) -> Pagination:
    return Pagination(limit=limit, offset=offset)


PaginationDep = Annotated[Pagination, Depends(pagination)]


def path_id(description: str) -> object:
    """A path segment naming a resource: 1–64 characters, as every id the services make."""
    return Path(min_length=1, max_length=ID_MAX_LENGTH, description=description)


AllianceId = Annotated[str, path_id("Identificativo dell'alleanza")]
PartnerId = Annotated[str, path_id("Identificativo del partner")]
ProjectId = Annotated[str, path_id("Identificativo del progetto")]
HouseholdId = Annotated[str, path_id("Identificativo del nucleo familiare")]
EnrolmentId = Annotated[str, path_id("Identificativo dell'iscrizione")]
OfferingId = Annotated[str, path_id("Identificativo dell'offerta")]

# An optional filter by id, bounded like the ids themselves.
IdFilter = Annotated[str | None, Query(min_length=1, max_length=ID_MAX_LENGTH)]

Month = Annotated[
    str,
    Query(
        pattern=MONTH_PATTERN,
        description=f"Mese AAAA-MM, anni {MIN_YEAR}–{MAX_YEAR}, es. 2027-03",
        examples=["2027-03"],
    ),
]


class ProblemFieldError(BaseModel):
    """One reason a request was refused: the field (or the rule's code) and why."""

    model_config = ConfigDict(extra="forbid")

    field: str = Field(description="Campo (percorso puntato, es. `period.start`) o codice del motivo")
    message: str = Field(description="Spiegazione per l'utente, in italiano")


class Problem(BaseModel):
    """Every error answer (RFC 9457, ``application/problem+json``)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "type": "https://conciliare.example/problems/422",
                "title": "Dati non validi",
                "status": 422,
                "detail": "La richiesta contiene dati non validi.",
                "instance": "/v1/partners",
                "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
                "errors": [{"field": "tax_code", "message": "formato non valido"}],
            }
        },
    )

    type: str = Field(description="URI che identifica il tipo di problema")
    title: str = Field(description="Titolo breve, uguale per ogni problema dello stesso tipo")
    status: int = Field(ge=400, le=599, description="Codice HTTP della risposta")
    detail: str = Field(description="Spiegazione di questo caso, in italiano")
    instance: str = Field(description="Percorso della richiesta")
    trace_id: str | None = Field(None, description="Da citare all'assistenza: trova la richiesta nei trace")
    errors: list[ProblemFieldError] | None = Field(None, description="I singoli motivi, per campo")
