"""Attendance registers: daily entries, monthly totals, the monthly CSV register.

Pure functions over pydantic models, no I/O. Hours are floats restricted to
quarter-hour multiples, which binary floating point represents exactly, so sums
are exact too.
"""

import calendar
import csv
import io
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any, Final

from pydantic import Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from conciliare.contracts.taxonomy import AttendanceMode
from services.enrolment.domain import (
    MAX_ATTENDANCE_HOURS_PER_DAY,
    DomainModel,
    EnrolmentStatus,
    ExistingEnrolment,
    Identifier,
    format_date,
    mask_codice_fiscale,
)

# A child who was never admitted has no register to keep.
STATUSES_WITH_ATTENDANCE: Final = frozenset(
    {EnrolmentStatus.CONFIRMED, EnrolmentStatus.COMPLETED, EnrolmentStatus.CANCELLED}
)


class AttendanceEntry(DomainModel):
    """One child's attendance on one day.

    ``hours`` is optional, 0 < hours <= 12 in quarter hours, and only for presences;
    an absence with ``hours=0`` is accepted and stored as ``None``.
    """

    enrolment_id: Identifier
    day: date
    present: bool
    hours: float | None = Field(None, validate_default=True)

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is None:
            return None
        if info.data.get("present") is False:
            if value == 0:
                return None
            raise PydanticCustomError("hours_when_absent", "Non si possono indicare ore per un giorno di assenza")
        if not 0 < value <= MAX_ATTENDANCE_HOURS_PER_DAY or not (value * 4).is_integer():
            raise PydanticCustomError(
                "attendance_hours_invalid",
                "Le ore di presenza vanno da 0,25 a 12, in quarti d'ora",
            )
        return value


class InvalidAttendance(ValueError):
    """An entry that breaks the rules of its enrolment; ``problems`` are Italian."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def attendance_problems(entry: AttendanceEntry, enrolment: ExistingEnrolment, today: date) -> list[str]:
    """Every reason ``entry`` cannot be recorded for ``enrolment``; empty means valid."""
    if entry.enrolment_id != enrolment.enrolment_id:
        raise ValueError("the entry belongs to another enrolment")
    problems: list[str] = []
    if enrolment.status not in STATUSES_WITH_ATTENDANCE:
        problems.append("Le presenze si registrano solo per iscrizioni confermate")
    if not enrolment.period.contains(entry.day):
        problems.append(
            f"Il giorno {format_date(entry.day)} è fuori dal periodo dell'iscrizione ({enrolment.period.describe()})"
        )
    if entry.day > today:
        problems.append(f"Il giorno {format_date(entry.day)} è nel futuro")
    if enrolment.attendance_mode is AttendanceMode.HOUR_PACKAGE and entry.present and entry.hours is None:
        problems.append("Per il pacchetto di ore indicare le ore di presenza")
    return problems


def validate_attendance(entry: AttendanceEntry, enrolment: ExistingEnrolment, today: date) -> AttendanceEntry:
    """``entry`` if it can be recorded, else ``InvalidAttendance`` with every problem."""
    problems = attendance_problems(entry, enrolment, today)
    if problems:
        raise InvalidAttendance(problems)
    return entry


class Totals(DomainModel):
    days_present: int
    hours: float


def _in_month(day: date, year: int, month: int) -> bool:
    return day.year == year and day.month == month


def monthly_totals(entries: Iterable[AttendanceEntry], year: int, month: int) -> dict[str, Totals]:
    """Days present and hours per enrolment in the month.

    Entries of other months are ignored; an enrolment with only absences gets zero
    totals. Two entries for the same enrolment and day are an error, not a sum.
    """
    seen: set[tuple[str, date]] = set()
    days: dict[str, int] = {}
    hours: dict[str, float] = {}
    for entry in entries:
        if not _in_month(entry.day, year, month):
            continue
        key = (entry.enrolment_id, entry.day)
        if key in seen:
            raise ValueError(f"duplicate attendance for {entry.enrolment_id} on {entry.day}")
        seen.add(key)
        days.setdefault(entry.enrolment_id, 0)
        hours.setdefault(entry.enrolment_id, 0.0)
        if entry.present:
            days[entry.enrolment_id] += 1
            hours[entry.enrolment_id] += entry.hours or 0.0
    return {eid: Totals(days_present=days[eid], hours=hours[eid]) for eid in days}


# --- the monthly register as CSV ----------------------------------------------------


class RegisterRow(DomainModel):
    """One enrolled child in the monthly register."""

    child_display_name: str
    child_codice_fiscale: str
    enrolment_id: Identifier
    entries: tuple[AttendanceEntry, ...] = ()

    @field_validator("entries")
    @classmethod
    def _same_enrolment(cls, value: tuple[AttendanceEntry, ...], info: ValidationInfo) -> tuple[AttendanceEntry, ...]:
        enrolment_id = info.data.get("enrolment_id")
        if enrolment_id is not None and any(e.enrolment_id != enrolment_id for e in value):
            raise PydanticCustomError("entries_other_enrolment", "Il registro contiene presenze di un'altra iscrizione")
        return value


def format_hours(hours: float) -> str:
    """Hours with the Italian decimal comma: 2.5 -> '2,5', 3.0 -> '3', 1.25 -> '1,25'."""
    if hours.is_integer():
        return str(int(hours))
    return f"{hours:.2f}".rstrip("0").replace(".", ",")


_FORMULA_PREFIXES: Final = ("=", "+", "-", "@", "\t", "\r")


def _safe_text(value: str) -> str:
    # Spreadsheets run cells starting with these as formulas (CSV injection); names
    # come from families, so neutralise them with a leading apostrophe.
    return "'" + value if value.startswith(_FORMULA_PREFIXES) else value


def _cell(entry: AttendanceEntry | None) -> str:
    if entry is None:
        return ""
    if not entry.present:
        return "A"
    return "P" if entry.hours is None else format_hours(entry.hours)


def register_csv(rows: Sequence[RegisterRow], year: int, month: int) -> str:
    """The monthly attendance register for Italian spreadsheets.

    ``;`` separated, CRLF line ends, starting with a UTF-8 BOM character: encode the
    result with ``"utf-8"`` (not ``"utf-8-sig"``, which would add a second BOM).
    Columns: child, masked codice fiscale, one per day of the month (``P`` present,
    ``A`` absent, hours when recorded, empty when nothing was recorded), days present,
    hours. Rows keep the given order; the last row holds the totals (per day: how
    many children were present).
    """
    day_count = calendar.monthrange(year, month)[1]
    days = [date(year, month, d) for d in range(1, day_count + 1)]

    buffer = io.StringIO()
    buffer.write("\ufeff")  # lets Excel detect UTF-8 (accented names)
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(
        [
            "Bambino",
            "Codice fiscale",
            *(d.strftime("%d/%m") for d in days),
            "Giorni presenza",
            "Ore",
        ]
    )

    present_per_day = [0] * day_count
    recorded_per_day = [False] * day_count
    total_days = 0
    total_hours = 0.0
    for row in rows:
        # Totals first: they refuse two entries for one day, which a dict would hide.
        totals = monthly_totals(row.entries, year, month).get(row.enrolment_id, Totals(days_present=0, hours=0.0))
        by_day = {e.day: e for e in row.entries if _in_month(e.day, year, month)}
        cells: list[Any] = [
            _safe_text(row.child_display_name),
            mask_codice_fiscale(row.child_codice_fiscale),
        ]
        for index, day in enumerate(days):
            entry = by_day.get(day)
            cells.append(_cell(entry))
            if entry is not None:
                recorded_per_day[index] = True
                present_per_day[index] += int(entry.present)
        cells += [totals.days_present, format_hours(totals.hours)]
        writer.writerow(cells)
        total_days += totals.days_present
        total_hours += totals.hours

    writer.writerow(
        [
            "Totale",
            "",
            *(str(n) if recorded else "" for n, recorded in zip(present_per_day, recorded_per_day, strict=True)),
            total_days,
            format_hours(total_hours),
        ]
    )
    return buffer.getvalue()
