"""Enrolment domain: households, children, eligibility, the enrolment lifecycle.

Pure rules over pydantic models, no I/O: the use-case modules load, call these and
store. Every rule about who may enrol where, and how an enrolment moves, is here;
the rule that allocates an offering's seats is the aggregate in ``seats.py``.

Validation failures are pydantic ``ValidationError`` items whose ``type`` is a stable
code (``codice_fiscale_invalid``, ``birth_date_mismatch`` ...) and whose ``msg`` is
Italian, located on the offending field; ``conciliare.chassis.validation.parse``
turns them into ``ValidationFailed`` field errors.
"""

import calendar
import re
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Final, NoReturn
from zoneinfo import ZoneInfo

from codicefiscale import codicefiscale
from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from conciliare.contracts.common import Contract
from conciliare.contracts.partners import MembershipStatus
from conciliare.contracts.taxonomy import (
    ATTENDANCE_MODE_LABELS,
    AttendanceMode,
    OfferingStatus,
    PriceUnit,
    SpecialNeed,
)
from conciliare.contracts.taxonomy import (
    EnrolmentStatus as EnrolmentStatus,  # the rest of the service reads it from here
)
from conciliare.errors import Conflict

ROME: Final = ZoneInfo("Europe/Rome")
MAX_CHILD_AGE_MONTHS: Final = 18 * 12
MAX_ATTENDANCE_HOURS_PER_DAY: Final = 12.0


class DomainModel(Contract):
    """Immutable value: rules return new values instead of mutating."""

    model_config = ConfigDict(frozen=True)


def _fail(code: str, message: str) -> NoReturn:
    # Custom errors keep a stable machine code and an Italian message, without the
    # "Value error, " prefix pydantic puts on plain ValueErrors.
    raise PydanticCustomError(code, message)


def today_in_rome() -> date:
    """Today's calendar date in Italy (the only clock read of this module)."""
    return datetime.now(ROME).date()


def _today(info: ValidationInfo) -> date:
    # Validators that depend on "today" read it from the validation context, so the
    # service (and tests) can pin it: Model.model_validate(data, context={"today": d}).
    context = info.context
    if isinstance(context, Mapping):
        value = context.get("today")
        if isinstance(value, datetime):
            return value.astimezone(ROME).date()
        if isinstance(value, date):
            return value
    return today_in_rome()


def format_date(day: date) -> str:
    """Italian short date: 14/03/2019."""
    return day.strftime("%d/%m/%Y")


# --- vocabulary ----------------------------------------------------------------------
# The catalog's enums come from ``conciliare.contracts.taxonomy``; only the wording of
# this service's messages lives here (labels, never values).

# Short names for the family's refusal messages ("non è attrezzato per: DSA, ADHD").
NEED_SHORT_LABELS: Final[Mapping[SpecialNeed, str]] = {
    SpecialNeed.DSA: "DSA",
    SpecialNeed.ADHD: "ADHD",
    SpecialNeed.BES: "BES",
    SpecialNeed.DISABILITA: "disabilità",
}

# "Il servizio ... è sospeso": the taxonomy's labels agree with "offerta", not "servizio".
SERVICE_STATUS_LABELS: Final[Mapping[OfferingStatus, str]] = {
    OfferingStatus.DRAFT: "in bozza",
    OfferingStatus.PUBLISHED: "pubblicato",
    OfferingStatus.SUSPENDED: "sospeso",
    OfferingStatus.ARCHIVED: "archiviato",
}

WEEKDAY_LABELS: Final[Mapping[int, str]] = {
    1: "lunedì",
    2: "martedì",
    3: "mercoledì",
    4: "giovedì",
    5: "venerdì",
    6: "sabato",
    7: "domenica",
}


# --- scalar field types -------------------------------------------------------------


def _identifier(value: str) -> str:
    if not value or len(value) > 64:
        _fail("identifier_invalid", "Identificativo mancante o troppo lungo (max 64 caratteri)")
    return value


Identifier = Annotated[str, AfterValidator(_identifier)]


def _person_name(value: str) -> str:
    value = " ".join(value.split())
    if not value:
        _fail("name_missing", "Il nome è obbligatorio")
    if len(value) > 100:
        _fail("name_too_long", "Il nome non può superare 100 caratteri")
    return value


PersonName = Annotated[str, AfterValidator(_person_name)]


def normalize_codice_fiscale(value: str) -> str:
    """Upper case, no spaces: how a codice fiscale is stored and compared."""
    return "".join(value.split()).upper()


def _normalize_cf_input(value: Any) -> Any:
    return normalize_codice_fiscale(value) if isinstance(value, str) else value


def _valid_codice_fiscale(value: str) -> str:
    # 16 characters only: the 11-digit provisional code carries no birth date to check.
    if len(value) != 16 or not codicefiscale.is_valid(value):
        _fail(
            "codice_fiscale_invalid",
            "Codice fiscale non valido: servono 16 caratteri con carattere di controllo corretto",
        )
    return value


CodiceFiscale = Annotated[str, BeforeValidator(_normalize_cf_input), AfterValidator(_valid_codice_fiscale)]


def codice_fiscale_birth_date(cf: str) -> tuple[int, int, int]:
    """(two-digit year, month, day) encoded in a valid codice fiscale.

    The library decodes omocodia substitutions; the century it guesses is ignored,
    since the code only carries two digits of the year.
    """
    decoded: datetime = codicefiscale.decode(cf)["birthdate"]
    return decoded.year % 100, decoded.month, decoded.day


def _check_birth_date_against_cf(birth_date: date, info: ValidationInfo) -> None:
    cf = info.data.get("codice_fiscale")
    if cf is None:  # the codice fiscale already failed: one error is enough
        return
    yy, month, day = codice_fiscale_birth_date(cf)
    if (yy, month, day) != (birth_date.year % 100, birth_date.month, birth_date.day):
        # Shown in the declared century: the code itself only says the last two digits.
        encoded = f"{day:02d}/{month:02d}/{birth_date.year // 100:02d}{yy:02d}"
        _fail(
            "birth_date_mismatch",
            f"La data di nascita {format_date(birth_date)} non corrisponde a quella "
            f"contenuta nel codice fiscale ({encoded})",
        )


_EMAIL_RE: Final = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]{2,}$")


def _email(value: str) -> str:
    # email-validator is not a dependency: a basic shape check; delivery proves the rest.
    value = value.strip()
    if len(value) > 254 or not _EMAIL_RE.match(value):
        _fail("email_invalid", "Indirizzo email non valido")
    local, domain = value.rsplit("@", 1)
    return f"{local}@{domain.lower()}"


Email = Annotated[str, AfterValidator(_email)]

_PHONE_SEPARATORS: Final = re.compile(r"[\s\-./()]")


def _phone(value: str) -> str:
    # Leading zeros of Italian landlines are significant: only separators are removed.
    compact = _PHONE_SEPARATORS.sub("", value)
    digits = compact.removeprefix("+")
    if not digits.isdigit() or not 6 <= len(digits) <= 15:
        _fail("phone_invalid", "Numero di telefono non valido")
    return compact


Phone = Annotated[str, AfterValidator(_phone)]


def _istat(value: str) -> str:
    if not re.fullmatch(r"\d{6}", value):
        _fail("istat_invalid", "Il codice ISTAT del Comune deve avere 6 cifre")
    return value


IstatCode = Annotated[str, AfterValidator(_istat)]


def _is_quarter_hour(hours: float) -> bool:
    return (hours * 4).is_integer()


# --- household and child ------------------------------------------------------------


class Employment(StrEnum):
    EMPLOYED_BY_PARTNER = "employed_by_partner"
    EMPLOYED_ELSEWHERE = "employed_elsewhere"
    SELF_EMPLOYED = "self_employed"
    NOT_WORKING = "not_working"


class Guardian(DomainModel):
    """A parent or legal guardian of the household."""

    first_name: PersonName
    last_name: PersonName
    codice_fiscale: CodiceFiscale
    birth_date: date | None = None
    email: Email | None = None
    phone: Phone | None = None
    employment: Employment
    employer_partner_id: Identifier | None = Field(None, validate_default=True)

    @field_validator("birth_date")
    @classmethod
    def _birth_date_matches_cf(cls, value: date | None, info: ValidationInfo) -> date | None:
        if value is not None:
            _check_birth_date_against_cf(value, info)
        return value

    @field_validator("employer_partner_id")
    @classmethod
    def _employer_iff_partner(cls, value: str | None, info: ValidationInfo) -> str | None:
        employment = info.data.get("employment")
        if employment is None:
            return value
        if employment is Employment.EMPLOYED_BY_PARTNER and value is None:
            _fail(
                "employer_partner_required",
                "Indicare l'ente partner dell'alleanza presso cui lavora il genitore",
            )
        if employment is not Employment.EMPLOYED_BY_PARTNER and value is not None:
            _fail(
                "employer_partner_forbidden",
                "L'ente partner datore di lavoro si indica solo per chi lavora presso un partner",
            )
        return value


class IseeKind(StrEnum):
    ORDINARIO = "ordinario"
    MINORENNI = "minorenni"


class Isee(DomainModel):
    """Declared ISEE: value and expiry (the certificate itself is a stored document)."""

    value_cents: int
    kind: IseeKind
    expires_on: date

    @field_validator("value_cents")
    @classmethod
    def _not_negative(cls, value: int) -> int:
        if value < 0:
            _fail("isee_negative", "Il valore ISEE non può essere negativo")
        return value

    def is_valid_on(self, day: date) -> bool:
        """Whether the attestation still holds on ``day`` (expiry day included)."""
        return day <= self.expires_on


class HouseholdSpec(DomainModel):
    """A family as declared when it registers: 1 or 2 guardians, residence, ISEE."""

    guardians: tuple[Guardian, ...]
    residence_comune_istat: IstatCode
    isee: Isee | None = None
    single_parent: bool = False

    @field_validator("guardians")
    @classmethod
    def _one_or_two_distinct(cls, value: tuple[Guardian, ...]) -> tuple[Guardian, ...]:
        if not 1 <= len(value) <= 2:
            _fail("guardians_count", "Il nucleo deve indicare uno o due genitori/tutori")
        if len({g.codice_fiscale for g in value}) != len(value):
            _fail("guardians_duplicate", "I due genitori/tutori hanno lo stesso codice fiscale")
        return value

    @field_validator("single_parent")
    @classmethod
    def _single_parent_has_one_guardian(cls, value: bool, info: ValidationInfo) -> bool:
        guardians = info.data.get("guardians")
        if value and guardians is not None and len(guardians) != 1:
            _fail(
                "single_parent_guardians",
                "Un nucleo monogenitoriale deve indicare un solo genitore/tutore",
            )
        return value

    @property
    def employer_partner_ids(self) -> frozenset[str]:
        """Alliance partners that employ a guardian."""
        return frozenset(g.employer_partner_id for g in self.guardians if g.employer_partner_id is not None)


class ChildSpec(DomainModel):
    """A child as declared at registration.

    Birth date checks use today's date from the validation context
    (``context={"today": d}``), Europe/Rome clock otherwise. This is an input model:
    a child who has since turned 18 no longer validates, so stored records must be
    read back with the registration date as context (or another model).
    """

    first_name: PersonName
    last_name: PersonName
    codice_fiscale: CodiceFiscale
    birth_date: date

    @field_validator("birth_date")
    @classmethod
    def _plausible_birth_date(cls, value: date, info: ValidationInfo) -> date:
        _check_birth_date_against_cf(value, info)
        today = _today(info)
        if value > today:
            _fail("birth_date_in_future", "La data di nascita non può essere nel futuro")
        if age_in_months(value, today) >= MAX_CHILD_AGE_MONTHS:
            _fail("child_not_minor", "Si possono iscrivere solo minorenni (meno di 18 anni)")
        return value


class ChildNeeds(DomainModel):
    """A child's special needs.

    Health data, a special category under GDPR art. 9: a model of its own so the
    service stores it apart from the child and reads it only when a rule needs it.
    """

    needs: frozenset[SpecialNeed] = frozenset()


def mask_codice_fiscale(cf: str) -> str:
    """Codice fiscale for published lists and registers: ``RSS************W``.

    Keeps the three surname letters and the control character, so a family can
    recognise its own row and staff can tell same-surname children apart. Masks the
    name letters, birth date and sex (characters 7-11) and the birthplace (12-15),
    whose foreign-country ``Z`` codes would reveal origin. Anything that is not a
    16-character code is masked entirely.
    """
    code = normalize_codice_fiscale(cf)
    if len(code) != 16:
        return "*" * len(code)
    return code[:3] + "*" * 12 + code[-1]


# --- ages ---------------------------------------------------------------------------


def age_in_months(birth_date: date, on_date: date) -> int:
    """Completed months of age on ``on_date``.

    A month is completed on the same day number of a later month or, when that month
    is shorter, on its last day (art. 2963 c.c.): born 31 January -> 1 month on 28/29
    February; born 29 February -> 12 months on 28 February of the next year.
    """
    if on_date < birth_date:
        raise ValueError("on_date precedes birth_date")
    months = (on_date.year - birth_date.year) * 12 + on_date.month - birth_date.month
    last_day = calendar.monthrange(on_date.year, on_date.month)[1]
    if on_date.day < min(birth_date.day, last_day):
        months -= 1
    return months


def format_age(months: int) -> str:
    """Italian age: '7 anni e 2 mesi', '1 anno', '5 mesi'."""
    years, rest = divmod(months, 12)
    month_label = "1 mese" if rest == 1 else f"{rest} mesi"
    if years == 0:
        return month_label
    year_label = "1 anno" if years == 1 else f"{years} anni"
    return year_label if rest == 0 else f"{year_label} e {month_label}"


class AgeRange(DomainModel):
    """Ages accepted by an offering, in completed months, both ends inclusive."""

    min_months: int
    max_months: int

    @field_validator("min_months")
    @classmethod
    def _min_not_negative(cls, value: int) -> int:
        if value < 0:
            _fail("age_range_negative", "L'età minima non può essere negativa")
        return value

    @field_validator("max_months")
    @classmethod
    def _max_not_below_min(cls, value: int, info: ValidationInfo) -> int:
        low = info.data.get("min_months")
        if low is not None and value < low:
            _fail("age_range_inverted", "L'età massima è inferiore a quella minima")
        return value

    def contains(self, months: int) -> bool:
        return self.min_months <= months <= self.max_months

    def describe(self) -> str:
        """'da 6 a 11 anni' for 72..143 months: up to 143 means 'until turning 12'."""
        upper = self.max_months
        if upper >= 12 and (upper + 1) % 12 == 0:
            high = format_age(upper + 1 - 12)
        else:
            high = format_age(upper)
        low = format_age(self.min_months)
        if high.endswith(" anni") and low.endswith(" anni"):
            low = low.removesuffix(" anni")
        return f"da {low} a {high}"


# --- periods ------------------------------------------------------------------------


class Period(DomainModel):
    """Calendar days from ``start`` to ``end``, both included."""

    start: date
    end: date

    @model_validator(mode="before")
    @classmethod
    def _from_pair(cls, data: Any) -> Any:
        # Catalog events may carry periods as [start, end] pairs.
        if isinstance(data, list | tuple) and len(data) == 2:
            return {"start": data[0], "end": data[1]}
        return data

    @field_validator("end")
    @classmethod
    def _end_not_before_start(cls, value: date, info: ValidationInfo) -> date:
        start = info.data.get("start")
        if start is not None and value < start:
            _fail("period_inverted", "La data di fine precede quella di inizio")
        return value

    def contains(self, day: date) -> bool:
        return self.start <= day <= self.end

    def covers(self, other: "Period") -> bool:
        return self.start <= other.start and other.end <= self.end

    def overlaps(self, other: "Period") -> bool:
        # Inclusive ends: a period ending on the day another starts shares that day.
        return self.start <= other.end and other.start <= self.end

    def describe(self) -> str:
        return f"dal {format_date(self.start)} al {format_date(self.end)}"


def merge_periods(periods: Iterable[Period]) -> list[Period]:
    """Union of periods, merging overlapping and back-to-back ones, sorted by start."""
    merged: list[Period] = []
    for period in sorted(periods, key=lambda p: (p.start, p.end)):
        if merged and period.start <= merged[-1].end + timedelta(days=1):
            last = merged[-1]
            merged[-1] = Period(start=last.start, end=max(last.end, period.end))
        else:
            merged.append(period)
    return merged


# --- offerings as the enrolment service knows them ---------------------------------


class Price(DomainModel):
    amount_cents: int
    unit: PriceUnit

    @field_validator("amount_cents")
    @classmethod
    def _not_negative(cls, value: int) -> int:
        if value < 0:
            _fail("price_negative", "Il prezzo non può essere negativo")
        return value


class OfferingProjection(DomainModel):
    """Local copy of a catalog offering, fed by catalog events.

    ``version`` is the catalog's revision: the service keeps the highest one so a late
    event never overwrites a newer state.
    """

    offering_id: Identifier
    alliance_id: Identifier
    provider_partner_id: Identifier
    title: str = ""
    status: OfferingStatus
    capacity: int
    age_range: AgeRange
    special_needs_supported: frozenset[SpecialNeed] = frozenset()
    attendance_modes: frozenset[AttendanceMode]
    periods: tuple[Period, ...] = ()
    comune_istat: IstatCode
    price: Price | None = None
    version: int = 0

    @field_validator("periods", mode="before")
    @classmethod
    def _only_dates(cls, value: Any) -> Any:
        # Catalog calendar periods also carry a kind (summer, christmas ...): irrelevant here.
        if isinstance(value, list | tuple):
            return [{"start": p.get("start"), "end": p.get("end")} if isinstance(p, Mapping) else p for p in value]
        return value

    @field_validator("capacity")
    @classmethod
    def _capacity_not_negative(cls, value: int) -> int:
        if value < 0:
            _fail("capacity_negative", "La capienza non può essere negativa")
        return value

    @property
    def accepts_requests(self) -> bool:
        """Whether families may ask for a seat (only a published offering takes them)."""
        return self.status is OfferingStatus.PUBLISHED


# --- alliances as the enrolment service knows them -----------------------------------

FORMALIZED: Final = MembershipStatus.FORMALIZED.value
NOT_FORMALIZED: Final = "not_formalized"


@dataclass(frozen=True)
class MemberState:
    """The newest known membership status of a partner in an alliance, and since when."""

    status: str
    at: datetime


@dataclass(frozen=True)
class Territory:
    """Local copy of an alliance's territory: its Comuni and its formalized partners.

    Fed by ``alliance.created`` and ``membership.changed`` events, which may arrive
    late or twice: the newest change of each membership wins. When this service never
    saw the events, the partners service's answer is applied the same way
    (``healed``). ``version`` counts stored revisions (optimistic concurrency).
    """

    alliance_id: str
    comuni_istat: frozenset[str] | None = None
    members: Mapping[str, MemberState] = field(default_factory=dict)
    version: int = 0

    @property
    def known(self) -> bool:
        """Whether the Comuni are known (membership events may come before the alliance's)."""
        return self.comuni_istat is not None

    @property
    def formalized_partner_ids(self) -> frozenset[str]:
        return frozenset(p for p, m in self.members.items() if m.status == FORMALIZED)

    def with_comuni(self, comuni_istat: Iterable[str]) -> "Territory":
        return replace(self, comuni_istat=frozenset(comuni_istat))

    def with_membership(self, partner_id: str, status: str, at: datetime) -> "Territory":
        """The territory after a membership change, unless a newer change is known."""
        current = self.members.get(partner_id)
        if current is not None and current.at > at:
            return self
        return replace(self, members={**self.members, partner_id: MemberState(status, at)})

    def healed(self, comuni_istat: Iterable[str], formalized: AbstractSet[str], at: datetime) -> "Territory":
        """The territory after the partners service answered, as of ``at``, what it is."""
        territory = self.with_comuni(comuni_istat)
        for partner_id in sorted(formalized):
            territory = territory.with_membership(partner_id, FORMALIZED, at)
        for partner_id in sorted(territory.formalized_partner_ids - formalized):
            territory = territory.with_membership(partner_id, NOT_FORMALIZED, at)
        return territory


# --- enrolments ---------------------------------------------------------------------


def _check_chosen_weekdays(value: frozenset[int] | None, info: ValidationInfo) -> frozenset[int] | None:
    mode = info.data.get("attendance_mode")
    if mode is None:
        return value
    if mode is AttendanceMode.CHOSEN_DAYS:
        if not value:
            _fail("chosen_weekdays_required", "Indicare almeno un giorno della settimana")
        if not value <= WEEKDAY_LABELS.keys():
            _fail("chosen_weekdays_invalid", "I giorni della settimana vanno da 1 (lunedì) a 7")
    elif value is not None:
        _fail(
            "chosen_weekdays_forbidden",
            "I giorni della settimana si indicano solo per la frequenza a giorni scelti",
        )
    return value


def _check_package_hours(value: float | None, info: ValidationInfo) -> float | None:
    mode = info.data.get("attendance_mode")
    if mode is None:
        return value
    if mode is AttendanceMode.HOUR_PACKAGE:
        if value is None:
            _fail("hours_required", "Indicare il numero di ore del pacchetto")
        if value <= 0 or not _is_quarter_hour(value):
            _fail("hours_invalid", "Le ore del pacchetto vanno indicate in quarti d'ora (es. 10,5)")
    elif value is not None:
        _fail("hours_forbidden", "Le ore si indicano solo per il pacchetto di ore")
    return value


class EnrolmentRequest(DomainModel):
    """What a family asks for: a child, an offering, a period, an attendance mode.

    ``chosen_weekdays`` are ISO weekdays (1 = Monday ... 7 = Sunday), required iff the
    mode is ``chosen_days``; ``hours`` (quarter-hour multiples) iff ``hour_package``.
    """

    child_id: Identifier
    offering_id: Identifier
    period: Period
    attendance_mode: AttendanceMode
    chosen_weekdays: frozenset[int] | None = Field(None, validate_default=True)
    hours: float | None = Field(None, validate_default=True)

    @field_validator("chosen_weekdays")
    @classmethod
    def _weekdays_iff_chosen_days(cls, value: frozenset[int] | None, info: ValidationInfo) -> frozenset[int] | None:
        return _check_chosen_weekdays(value, info)

    @field_validator("hours")
    @classmethod
    def _hours_iff_package(cls, value: float | None, info: ValidationInfo) -> float | None:
        return _check_package_hours(value, info)


ENROLMENT_STATUS_LABELS: Final[Mapping[EnrolmentStatus, str]] = {
    EnrolmentStatus.REQUESTED: "richiesta",
    EnrolmentStatus.CONFIRMED: "confermata",
    EnrolmentStatus.WAITLISTED: "in lista d'attesa",
    EnrolmentStatus.REFUSED: "respinta",
    EnrolmentStatus.CANCELLED: "annullata",
    EnrolmentStatus.COMPLETED: "conclusa",
}

# Enrolments that still hold (or wait for) a place: they block overlapping requests.
ACTIVE_STATUSES: Final = frozenset({EnrolmentStatus.REQUESTED, EnrolmentStatus.CONFIRMED, EnrolmentStatus.WAITLISTED})


class ExistingEnrolment(DomainModel):
    """A stored enrolment, as the eligibility and attendance rules need it.

    ``requested_at`` must be timezone-aware. (The order of arrival among the
    requests of an offering is the seats aggregate's business: ``seats.py``.)
    """

    enrolment_id: Identifier
    child_id: Identifier
    offering_id: Identifier
    period: Period
    attendance_mode: AttendanceMode
    chosen_weekdays: frozenset[int] | None = Field(None, validate_default=True)
    hours: float | None = Field(None, validate_default=True)
    status: EnrolmentStatus
    requested_at: datetime

    @field_validator("chosen_weekdays")
    @classmethod
    def _weekdays_iff_chosen_days(cls, value: frozenset[int] | None, info: ValidationInfo) -> frozenset[int] | None:
        return _check_chosen_weekdays(value, info)

    @field_validator("hours")
    @classmethod
    def _hours_iff_package(cls, value: float | None, info: ValidationInfo) -> float | None:
        return _check_package_hours(value, info)

    @field_validator("requested_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        # Naive and aware datetimes cannot be compared: FIFO order needs aware ones.
        if value.tzinfo is None or value.utcoffset() is None:
            _fail("requested_at_naive", "L'istante della richiesta deve indicare il fuso orario")
        return value


def new_enrolment(request: EnrolmentRequest, *, enrolment_id: str, requested_at: datetime) -> ExistingEnrolment:
    """The enrolment a request creates, in status ``requested``."""
    return ExistingEnrolment(
        enrolment_id=enrolment_id,
        child_id=request.child_id,
        offering_id=request.offering_id,
        period=request.period,
        attendance_mode=request.attendance_mode,
        chosen_weekdays=request.chosen_weekdays,
        hours=request.hours,
        status=EnrolmentStatus.REQUESTED,
        requested_at=requested_at,
    )


# --- eligibility --------------------------------------------------------------------


class RefusalCode(StrEnum):
    OFFERING_NOT_PUBLISHED = "offering_not_published"
    PERIOD_OUTSIDE_CALENDAR = "period_outside_calendar"
    PERIOD_IN_PAST = "period_in_past"
    AGE_OUT_OF_RANGE = "age_out_of_range"
    NEEDS_NOT_SUPPORTED = "needs_not_supported"
    NOT_IN_ALLIANCE = "not_in_alliance"
    OVERLAPPING_ENROLMENT = "overlapping_enrolment"
    ATTENDANCE_MODE_NOT_OFFERED = "attendance_mode_not_offered"


class Refusal(DomainModel):
    """One reason a request cannot be accepted, for the family (Italian message)."""

    code: RefusalCode
    message: str


def _join(labels: Iterable[str]) -> str:
    return ", ".join(labels)


def check_eligibility(
    request: EnrolmentRequest,
    child_birth_date: date,
    child_needs: ChildNeeds,
    household: HouseholdSpec,
    offering: OfferingProjection,
    alliance_comuni_istat: AbstractSet[str],
    alliance_partner_ids: AbstractSet[str],
    active_enrolments_of_child: Sequence[ExistingEnrolment],
    today: date,
) -> list[Refusal]:
    """Every reason the request is refused, in a fixed order; empty means eligible.

    Each code appears at most once. The alliance sets are those of the offering's
    alliance. ``active_enrolments_of_child`` may hold any enrolment of the child:
    only active ones (requested, confirmed, waitlisted) count; when re-checking a
    stored enrolment, leave it out.
    """
    if request.offering_id != offering.offering_id:
        raise ValueError("the offering does not match the request")
    refusals: list[Refusal] = []

    def refuse(code: RefusalCode, message: str) -> None:
        refusals.append(Refusal(code=code, message=message))

    if offering.status is not OfferingStatus.PUBLISHED:
        refuse(
            RefusalCode.OFFERING_NOT_PUBLISHED,
            f"Il servizio non accetta iscrizioni: è {SERVICE_STATUS_LABELS[offering.status]}",
        )

    calendar_periods = merge_periods(offering.periods)
    if not any(p.covers(request.period) for p in calendar_periods):
        opening = _join(p.describe() for p in calendar_periods) or "nessun periodo"
        refuse(
            RefusalCode.PERIOD_OUTSIDE_CALENDAR,
            f"Il periodo richiesto ({request.period.describe()}) non rientra nel calendario del servizio: {opening}",
        )

    if request.period.start < today:
        refuse(
            RefusalCode.PERIOD_IN_PAST,
            f"Il periodo richiesto inizia il {format_date(request.period.start)}, prima di "
            f"oggi ({format_date(today)}): indicare una data di inizio da oggi in poi",
        )

    # Age at the start of the period: a child may age out during it and still finish.
    if request.period.start < child_birth_date:
        refuse(
            RefusalCode.AGE_OUT_OF_RANGE,
            "Il bambino non sarà ancora nato all'inizio del periodo; il servizio accoglie "
            f"{offering.age_range.describe()}",
        )
    else:
        months = age_in_months(child_birth_date, request.period.start)
        if not offering.age_range.contains(months):
            refuse(
                RefusalCode.AGE_OUT_OF_RANGE,
                f"Il bambino avrà {format_age(months)} all'inizio del periodo; il servizio "
                f"accoglie {offering.age_range.describe()}",
            )

    unsupported = child_needs.needs - offering.special_needs_supported
    if unsupported:
        names = _join(NEED_SHORT_LABELS[n] for n in SpecialNeed if n in unsupported)
        refuse(
            RefusalCode.NEEDS_NOT_SUPPORTED,
            f"Il servizio non è attrezzato per questi bisogni del bambino: {names}",
        )

    resident = household.residence_comune_istat in alliance_comuni_istat
    works_for_partner = not household.employer_partner_ids.isdisjoint(alliance_partner_ids)
    if not (resident or works_for_partner):
        refuse(
            RefusalCode.NOT_IN_ALLIANCE,
            "Il servizio è riservato a chi risiede in un Comune dell'alleanza o lavora "
            "presso un ente partner: la famiglia non risulta in nessuno dei due casi",
        )

    clashes = sorted(
        (
            e
            for e in active_enrolments_of_child
            if e.child_id == request.child_id and e.status in ACTIVE_STATUSES and e.period.overlaps(request.period)
        ),
        key=lambda e: e.period.start,
    )
    if clashes:
        listed = "; ".join(f"{e.period.describe()} ({ENROLMENT_STATUS_LABELS[e.status]})" for e in clashes)
        refuse(
            RefusalCode.OVERLAPPING_ENROLMENT,
            f"Il bambino ha già un'iscrizione in un periodo che si sovrappone: {listed}",
        )

    if request.attendance_mode not in offering.attendance_modes:
        available = _join(ATTENDANCE_MODE_LABELS[m] for m in AttendanceMode if m in offering.attendance_modes)
        refuse(
            RefusalCode.ATTENDANCE_MODE_NOT_OFFERED,
            f"La modalità «{ATTENDANCE_MODE_LABELS[request.attendance_mode]}» non è prevista "
            f"da questo servizio; modalità disponibili: {available or 'nessuna'}",
        )

    return refusals


# --- lifecycle ----------------------------------------------------------------------

ALLOWED_TRANSITIONS: Final[Mapping[EnrolmentStatus, frozenset[EnrolmentStatus]]] = {
    EnrolmentStatus.REQUESTED: frozenset(
        {EnrolmentStatus.CONFIRMED, EnrolmentStatus.WAITLISTED, EnrolmentStatus.REFUSED, EnrolmentStatus.CANCELLED}
    ),
    # waitlisted -> confirmed is the promotion when a seat frees up.
    EnrolmentStatus.WAITLISTED: frozenset({EnrolmentStatus.CONFIRMED, EnrolmentStatus.CANCELLED}),
    EnrolmentStatus.CONFIRMED: frozenset({EnrolmentStatus.CANCELLED, EnrolmentStatus.COMPLETED}),
    EnrolmentStatus.REFUSED: frozenset(),
    EnrolmentStatus.CANCELLED: frozenset(),
    EnrolmentStatus.COMPLETED: frozenset(),
}


class InvalidTransition(Conflict):
    """The enrolment cannot move from its current status to the requested one."""

    def __init__(self, current: EnrolmentStatus, target: EnrolmentStatus) -> None:
        super().__init__(
            f"L'iscrizione è {ENROLMENT_STATUS_LABELS[current]}: non può diventare {ENROLMENT_STATUS_LABELS[target]}"
        )
        self.current = current
        self.target = target


def transition(current: EnrolmentStatus, target: EnrolmentStatus) -> EnrolmentStatus:
    """``target`` if the move is allowed; staying in the same status is not a move."""
    if target not in ALLOWED_TRANSITIONS[current]:
        raise InvalidTransition(current, target)
    return target


def apply_transition(enrolment: ExistingEnrolment, target: EnrolmentStatus) -> ExistingEnrolment:
    """A copy of ``enrolment`` in status ``target``, if the move is allowed."""
    return enrolment.model_copy(update={"status": transition(enrolment.status, target)})
