"""Catalog domain: every rule about service offerings, with no I/O.

An *offering* is a service (post scuola, centro estivo, micronido ...) that a provider
partner publishes in an alliance's catalog. What an offering *is* (`OfferingSpec`
and its value objects, with their validation rules) is a shared contract in
``conciliare/contracts/offerings.py``; this module holds what the catalog *decides*:

- children's age in completed months;
- calendar questions ("is it open during the Easter break?");
- the status machine draft -> published <-> suspended -> archived and the rules
  guarding publishing and edits (publishability, capacity against confirmed seats);
- search: criteria, matching, text relevance, ordering and the tokens stored on
  each document for a database prefilter.

Conventions: money in integer cents; dates are `datetime.date` and times are naive
local times, both meaning Europe/Rome; "today" is always passed in by the caller so
that every function stays pure.
"""

from __future__ import annotations

import calendar as _gregorian
import re
import unicodedata
from collections.abc import Collection, Iterable, Mapping
from datetime import date, timedelta
from types import MappingProxyType
from typing import Protocol, TypeVar

from pydantic import ValidationInfo, field_validator

from conciliare.contracts.offerings import (
    ISTAT_CODE_RE,
    MAX_AGE_MONTHS,
    AgeRange,
    Calendar,
    CalendarPeriod,
    OfferingSpec,
    ValueObject,
    invalid_value,
)
from conciliare.contracts.taxonomy import OfferingStatus, ServiceType, SpecialNeed

# ---------------------------------------------------------------------------
# Limits and rule constants
# ---------------------------------------------------------------------------

SEARCH_TEXT_MAX_CHARS = 200

# Services delivered at the family's home or on the move have no venue to show.
ADDRESS_OPTIONAL_TYPES: frozenset[ServiceType] = frozenset(
    {ServiceType.BABY_SITTING, ServiceType.TRASPORTO_ACCOMPAGNAMENTO}
)

# ---------------------------------------------------------------------------
# Errors raised by domain operations (validation errors are pydantic's)
# ---------------------------------------------------------------------------


class CatalogError(Exception):
    """Base of the catalog's business-rule errors; `str(error)` is Italian."""


class InvalidTransition(CatalogError):
    def __init__(self, current: OfferingStatus, target: OfferingStatus) -> None:
        self.current = current
        self.target = target
        if current is target:
            message = f"l'offerta è già nello stato «{current.label()}»"
        elif current is OfferingStatus.ARCHIVED:
            message = "un'offerta archiviata non può più cambiare stato"
        else:
            message = f"non è possibile passare dallo stato «{current.label()}» allo stato «{target.label()}»"
        super().__init__(message)


class NotPublishable(CatalogError):
    """Carries every reason at once so the form can show them all."""

    def __init__(self, reasons: list[str], fields: list[str] | None = None) -> None:
        self.reasons = list(reasons)
        # The spec field each reason is about, so a form can highlight it.
        self.fields = list(fields) if fields is not None else ["spec"] * len(self.reasons)
        super().__init__("l'offerta non può essere pubblicata: " + "; ".join(self.reasons))


class CapacityBelowConfirmed(CatalogError):
    def __init__(self, new_capacity: int, confirmed_count: int) -> None:
        self.new_capacity = new_capacity
        self.confirmed_count = confirmed_count
        super().__init__(
            f"la capienza ({new_capacity}) non può essere inferiore ai posti già confermati ({confirmed_count})"
        )


class NotEditable(CatalogError):
    def __init__(self, status: OfferingStatus) -> None:
        self.status = status
        super().__init__(f"un'offerta nello stato «{status.label()}» non può essere modificata")


# ---------------------------------------------------------------------------
# Text normalisation (shared by the stored tokens and by queries)
# ---------------------------------------------------------------------------

ITALIAN_STOPWORDS: frozenset[str] = frozenset(
    """
    a ad al all alla alle allo ai agli c che ci col con d da dal dall dalla dalle
    dallo dai dagli de dei degli del dell della delle dello di e ed fra gli i il in
    l la le lo ne negli nei nel nell nella nelle nello non o od per s si su sul sull
    sulla sulle sullo sui sugli tra un una uno
    """.split()
)

_TOKEN_RE = re.compile(r"[a-z0-9]+")


def normalize_text(text: str) -> str:
    """Lowercase and strip accents ("Attività" -> "attivita")."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return bare.casefold()


def tokenize(text: str) -> list[str]:
    """Normalised words without Italian stopwords, deduplicated, in text order.

    Anything but ASCII letters and digits separates words, so "ludico-educative" and
    "dell'infanzia" split; one-letter leftovers carry no meaning and are dropped.
    """
    words = _TOKEN_RE.findall(normalize_text(text))
    kept = (w for w in words if len(w) > 1 and w not in ITALIAN_STOPWORDS)
    return list(dict.fromkeys(kept))


# ---------------------------------------------------------------------------
# Children's age
# ---------------------------------------------------------------------------


def age_in_months(birth_date: date, on_date: date) -> int:
    """Completed months of age on `on_date`.

    A month is completed on the day with the birth day's number or, when the month
    is too short for it, on its last day (as art. 2963 c.c. counts terms): a child
    born on 31 January is 1 month old on 28 (or 29) February.
    """
    if on_date < birth_date:
        raise ValueError("la data di riferimento precede la data di nascita")
    months = (on_date.year - birth_date.year) * 12 + on_date.month - birth_date.month
    days_in_month = _gregorian.monthrange(on_date.year, on_date.month)[1]
    if on_date.day < min(birth_date.day, days_in_month):
        months -= 1
    return months


def accepts_age(age_range: AgeRange, birth_date: date, on_date: date) -> bool:
    """Whether a child born on `birth_date` fits `age_range` on `on_date`.

    A child not yet born on `on_date` is never accepted.
    """
    if on_date < birth_date:
        return False
    return age_range.contains(age_in_months(birth_date, on_date))


# ---------------------------------------------------------------------------
# Calendar questions
# ---------------------------------------------------------------------------


def _check_range(date_from: date, date_to: date) -> None:
    if date_from > date_to:
        raise ValueError("la data iniziale deve precedere o coincidere con la finale")


def periods_overlapping(calendar: Calendar, date_from: date, date_to: date) -> list[CalendarPeriod]:
    """Periods sharing at least one day with [date_from, date_to] (inclusive)."""
    _check_range(date_from, date_to)
    return [p for p in calendar.periods if p.overlaps(date_from, date_to)]


def is_open_between(
    calendar: Calendar,
    date_from: date,
    date_to: date,
    weekdays: Collection[int] | None = None,
) -> bool:
    """Whether the service runs on at least one day of [date_from, date_to].

    A day is open when it lies in a period, is not a closure and, if `weekdays`
    (ISO numbers) is given, falls on one of them. So an offering is open "during the
    Easter break" unless the break misses all its periods or every shared day is
    closed.
    """
    closures = set(calendar.closures)
    for period in periods_overlapping(calendar, date_from, date_to):
        first = max(period.start, date_from)
        last = min(period.end, date_to)
        if weekdays is None:
            days = (last - first).days + 1
            closed = sum(1 for c in calendar.closures if first <= c <= last)
            if days > closed:
                return True
            continue
        if not weekdays:
            return False
        # Terminates quickly: each week holds a wanted weekday, so at most
        # (closures + 1) weeks are scanned before an open day turns up.
        day = first
        while day <= last:
            if day.isoweekday() in weekdays and day not in closures:
                return True
            day += timedelta(days=1)
    return False


def is_open_on(calendar: Calendar, day: date, weekdays: Collection[int] | None = None) -> bool:
    return is_open_between(calendar, day, day, weekdays)


def upcoming_start(calendar: Calendar, reference: date) -> date | None:
    """First day on or after `reference` inside a period (closures ignored).

    A period already running counts as starting on `reference`.
    """
    starts = [max(p.start, reference) for p in calendar.periods if p.end >= reference]
    return min(starts, default=None)


# ---------------------------------------------------------------------------
# Status machine
# ---------------------------------------------------------------------------

ALLOWED_TRANSITIONS: Mapping[OfferingStatus, frozenset[OfferingStatus]] = MappingProxyType(
    {
        OfferingStatus.DRAFT: frozenset({OfferingStatus.PUBLISHED, OfferingStatus.ARCHIVED}),
        OfferingStatus.PUBLISHED: frozenset({OfferingStatus.SUSPENDED, OfferingStatus.ARCHIVED}),
        OfferingStatus.SUSPENDED: frozenset({OfferingStatus.PUBLISHED, OfferingStatus.ARCHIVED}),
        OfferingStatus.ARCHIVED: frozenset(),  # final
    }
)


def transition(current: OfferingStatus, target: OfferingStatus) -> OfferingStatus:
    """Return `target` if the move is allowed; asking for the same state is an error
    so that a repeated command is noticed rather than silently re-applied."""
    if target not in ALLOWED_TRANSITIONS[current]:
        raise InvalidTransition(current, target)
    return target


def publication_gaps(spec: OfferingSpec, today: date) -> list[tuple[str, str]]:
    """What `spec` still lacks to be shown to families, as (field, Italian reason);
    empty when it is publishable. Capacity >= 1 is already guaranteed by `OfferingSpec`."""
    problems: list[tuple[str, str]] = []
    if not spec.calendar.periods:
        problems.append(("calendar", "il calendario non contiene alcun periodo di apertura"))
    elif not is_open_between(spec.calendar, today, date.max, spec.weekdays()):
        problems.append(
            (
                "calendar",
                "il calendario non ha più giorni di apertura: i periodi sono "
                "terminati o tutti i giorni rimasti sono di chiusura",
            )
        )
    if not spec.description:
        problems.append(("description", "manca la descrizione del servizio"))
    if spec.address is None and spec.type not in ADDRESS_OPTIONAL_TYPES:
        problems.append(("address", "manca l'indirizzo della sede del servizio"))
    return problems


def ensure_publishable(spec: OfferingSpec, today: date) -> None:
    """Raise `NotPublishable` listing every reason `spec` cannot be shown to families."""
    problems = publication_gaps(spec, today)
    if problems:
        raise NotPublishable([reason for _, reason in problems], [field for field, _ in problems])


def change_status(current: OfferingStatus, target: OfferingStatus, spec: OfferingSpec, today: date) -> OfferingStatus:
    """`transition` plus the publishing precondition (also when resuming)."""
    new_status = transition(current, target)
    if new_status is OfferingStatus.PUBLISHED:
        ensure_publishable(spec, today)
    return new_status


def validate_capacity_change(new_capacity: int, confirmed_count: int) -> None:
    """Capacity may shrink, but never below the seats already confirmed."""
    if new_capacity < confirmed_count:
        raise CapacityBelowConfirmed(new_capacity, confirmed_count)


def check_update(status: OfferingStatus, new_spec: OfferingSpec, confirmed_count: int, today: date) -> None:
    """Rules for replacing an offering's spec.

    Archived offerings are read-only; a published offering must stay publishable
    (families see it at once); drafts and suspended offerings may be incomplete
    until they are (re)published.
    """
    if status is OfferingStatus.ARCHIVED:
        raise NotEditable(status)
    validate_capacity_change(new_spec.capacity, confirmed_count)
    if status is OfferingStatus.PUBLISHED:
        ensure_publishable(new_spec, today)


# ---------------------------------------------------------------------------
# Search
# ---------------------------------------------------------------------------


class OfferingLike(Protocol):
    """What search needs to know about a stored offering."""

    @property
    def id(self) -> str: ...
    @property
    def alliance_id(self) -> str: ...
    @property
    def provider_partner_id(self) -> str: ...
    @property
    def status(self) -> OfferingStatus: ...
    @property
    def spec(self) -> OfferingSpec: ...


class OfferingView(ValueObject):
    """A stored offering as search sees it (satisfies `OfferingLike`)."""

    id: str
    alliance_id: str
    provider_partner_id: str
    status: OfferingStatus
    spec: OfferingSpec


class SearchCriteria(ValueObject):
    """A family's or an operator's search; every given criterion must hold.

    The child's age is given either as `child_birth_date` with the `on_date` on
    which it matters, or directly as `child_age_months`. A date range may be open
    on one side; without dates the calendar is not checked.
    """

    # One alliance, any of several, or (both None) every alliance: only families search
    # across alliances, and only published offerings (the gateway decides who may).
    alliance_id: str | None = None
    alliance_ids: tuple[str, ...] | None = None
    provider_partner_id: str | None = None
    comune_istat: str | None = None
    child_birth_date: date | None = None
    on_date: date | None = None
    child_age_months: int | None = None
    date_from: date | None = None
    date_to: date | None = None
    types: tuple[ServiceType, ...] = ()  # any of
    needs: tuple[SpecialNeed, ...] = ()  # all of
    text: str | None = None
    only_published: bool = True

    @field_validator("alliance_id")
    @classmethod
    def _alliance_given(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise invalid_value("alliance_required", "indicare l'alleanza")
        return value

    @field_validator("comune_istat")
    @classmethod
    def _istat_code(cls, value: str | None) -> str | None:
        if value is not None and not ISTAT_CODE_RE.fullmatch(value.strip()):
            raise invalid_value(
                "istat_code",
                "il codice ISTAT del Comune deve essere composto da 6 cifre",
            )
        return None if value is None else value.strip()

    @field_validator("on_date")
    @classmethod
    def _on_date_goes_with_birth_date(cls, value: date | None, info: ValidationInfo) -> date | None:
        birth = info.data.get("child_birth_date")
        if birth is not None and value is None:
            raise invalid_value(
                "on_date_required",
                "con la data di nascita indicare anche la data di riferimento",
            )
        if birth is None and value is not None:
            raise invalid_value(
                "birth_date_required",
                "la data di riferimento richiede la data di nascita del bambino",
            )
        if birth is not None and value is not None and value < birth:
            raise invalid_value(
                "on_date_before_birth",
                "la data di riferimento precede la data di nascita",
            )
        return value

    @field_validator("child_age_months")
    @classmethod
    def _age_or_birth_date(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is None:
            return None
        if info.data.get("child_birth_date") is not None:
            raise invalid_value(
                "age_given_twice",
                "indicare la data di nascita oppure l'età in mesi, non entrambe",
            )
        if not 0 <= value <= MAX_AGE_MONTHS:
            raise invalid_value(
                "age_out_of_bounds",
                f"l'età deve essere compresa tra 0 e {MAX_AGE_MONTHS} mesi",
            )
        return value

    @field_validator("date_to")
    @classmethod
    def _range_order(cls, value: date | None, info: ValidationInfo) -> date | None:
        start = info.data.get("date_from")
        if value is not None and start is not None and start > value:
            raise invalid_value(
                "date_range_order",
                "la data iniziale deve precedere o coincidere con la data finale",
            )
        return value

    @field_validator("text")
    @classmethod
    def _text_length(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if len(value) > SEARCH_TEXT_MAX_CHARS:
            raise invalid_value(
                "search_text_too_long",
                f"il testo da cercare può contenere al massimo {SEARCH_TEXT_MAX_CHARS} caratteri",
            )
        return value or None

    def child_age(self) -> int | None:
        """The child's age in completed months, if the search is about a child."""
        if self.child_birth_date is not None and self.on_date is not None:
            return age_in_months(self.child_birth_date, self.on_date)
        return self.child_age_months


def _searchable_fields(spec: OfferingSpec) -> tuple[list[str], list[str], list[str]]:
    return tokenize(spec.title), tokenize(spec.type.label()), tokenize(spec.description)


def search_tokens(spec: OfferingSpec) -> list[str]:
    """Tokens of title, type label and description, to store on the document.

    A query matches when each of its tokens (`tokenize(text)`) is a prefix of a
    stored token, so a database prefilter on these tokens must use anchored
    prefixes; `matches` remains the authority.
    """
    title, type_label, description = _searchable_fields(spec)
    return list(dict.fromkeys([*title, *type_label, *description]))


def _text_matches(spec: OfferingSpec, text: str) -> bool:
    stored = search_tokens(spec)
    return all(any(t.startswith(q) for t in stored) for q in tokenize(text))


def matches(offering: OfferingLike, criteria: SearchCriteria) -> bool:
    """Whether `offering` satisfies every criterion given."""
    spec = offering.spec
    if criteria.alliance_id is not None and offering.alliance_id != criteria.alliance_id:
        return False
    if criteria.alliance_ids is not None and offering.alliance_id not in criteria.alliance_ids:
        return False
    if criteria.only_published and offering.status is not OfferingStatus.PUBLISHED:
        return False
    if criteria.provider_partner_id is not None and offering.provider_partner_id != criteria.provider_partner_id:
        return False
    if criteria.comune_istat is not None and spec.comune_istat != criteria.comune_istat:
        return False
    if criteria.types and spec.type not in criteria.types:
        return False
    if not set(criteria.needs).issubset(spec.special_needs_supported):
        return False
    age = criteria.child_age()
    if age is not None and not spec.age_range.contains(age):
        return False
    if (criteria.date_from is not None or criteria.date_to is not None) and (
        not is_open_between(
            spec.calendar,
            criteria.date_from or date.min,
            criteria.date_to or date.max,
            spec.weekdays(),
        )
    ):
        return False
    return criteria.text is None or _text_matches(spec, criteria.text)


# Per query token the best hit counts: a title word says more than a word lost in
# the description, and a whole word more than a prefix of one.
TITLE_WORD_WEIGHT = 3.0
TITLE_PREFIX_WEIGHT = 2.0
TYPE_WORD_WEIGHT = 1.5
TYPE_PREFIX_WEIGHT = 1.0
DESCRIPTION_WORD_WEIGHT = 1.0
DESCRIPTION_PREFIX_WEIGHT = 0.5


def _hit(query: str, tokens: list[str], word: float, prefix: float) -> float:
    if query in tokens:
        return word
    if any(t.startswith(query) for t in tokens):
        return prefix
    return 0.0


def relevance(offering: OfferingLike, text: str) -> float:
    """Mean best-hit score of the query tokens, from 0 to `TITLE_WORD_WEIGHT`."""
    queries = tokenize(text)
    if not queries:
        return 0.0
    title, type_label, description = _searchable_fields(offering.spec)
    total = 0.0
    for query in queries:
        total += max(
            _hit(query, title, TITLE_WORD_WEIGHT, TITLE_PREFIX_WEIGHT),
            _hit(query, type_label, TYPE_WORD_WEIGHT, TYPE_PREFIX_WEIGHT),
            _hit(query, description, DESCRIPTION_WORD_WEIGHT, DESCRIPTION_PREFIX_WEIGHT),
        )
    return total / len(queries)


_O = TypeVar("_O", bound=OfferingLike)


def sort_results(offerings: Iterable[_O], criteria: SearchCriteria, today: date) -> list[_O]:
    """Most relevant first (when there is text), then soonest available, then title.

    "Soonest" is the first period day on or after `criteria.date_from`, or `today`
    when no date was asked; offerings with nothing upcoming go last. The id breaks
    the remaining ties so that pages never shuffle.
    """
    reference = criteria.date_from or today
    text = criteria.text or ""

    def key(offering: _O) -> tuple[float, date, str, str]:
        score = relevance(offering, text) if text else 0.0
        start = upcoming_start(offering.spec.calendar, reference) or date.max
        return (-score, start, normalize_text(offering.spec.title), offering.id)

    return sorted(offerings, key=key)
