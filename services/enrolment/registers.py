"""Attendance registers: recording days, an enrolment's totals, an offering's monthly CSV.

The rules (what may be recorded, totals, the CSV layout) are in ``attendance.py``;
this module loads, applies them and stores.
"""

import re
from datetime import date, timedelta
from typing import Final

from pydantic import ValidationError

from conciliare.contracts.enrolment import (
    AttendanceDay,
    AttendanceOut,
    AttendanceRecord,
    AttendanceTotals,
    MonthTotals,
    RegisterExport,
    Viewer,
)
from conciliare.errors import FieldError, ValidationFailed, validation_failed_from_pydantic
from services.enrolment import access, attendance
from services.enrolment.domain import ROME, EnrolmentStatus, Period, format_date
from services.enrolment.ports import Repository, Runtime
from services.enrolment.records import AttendanceMonth, Enrolment, RecordedDay
from services.enrolment.seats import OfferingSeats

_MONTH: Final = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def _months(period: Period) -> list[str]:
    months = []
    year, month = period.start.year, period.start.month
    while (year, month) <= (period.end.year, period.end.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def _entries(enrolment_id: str, months: list[AttendanceMonth]) -> list[attendance.AttendanceEntry]:
    entries = [
        attendance.AttendanceEntry.model_construct(
            enrolment_id=enrolment_id, day=day.day, present=day.present, hours=day.hours
        )
        for month in months
        for day in month.days.values()
    ]
    return sorted(entries, key=lambda e: e.day)


def _attendance_out(repo: Repository, record: Enrolment) -> AttendanceOut:
    months = _months(record.period)
    entries = _entries(record.id, repo.attendance(record.id, months))
    month_totals = []
    for month in months:
        totals = attendance.monthly_totals(entries, int(month[:4]), int(month[5:])).get(record.id)
        if totals is not None:
            month_totals.append(MonthTotals(month=month, days_present=totals.days_present, hours=totals.hours))
    return AttendanceOut(
        enrolment_id=record.id,
        entries=[AttendanceDay(day=e.day, present=e.present, hours=e.hours) for e in entries],
        months=month_totals,
        totals=AttendanceTotals(
            days_present=sum(m.days_present for m in month_totals), hours=sum(m.hours for m in month_totals)
        ),
    )


def _status(repo: Repository, record: Enrolment) -> EnrolmentStatus:
    seats = repo.seats_snapshot(record.offering_id)
    return seats.status_of(record.id) if seats is not None else EnrolmentStatus.REQUESTED


def get_attendance(repo: Repository, enrolment_id: str, viewer: Viewer) -> AttendanceOut:
    """Recorded days and totals (per month and overall) of an enrolment."""
    return _attendance_out(repo, access.visible_enrolment(viewer, repo.enrolment(enrolment_id)))


def record_attendance(
    repo: Repository, enrolment_id: str, viewer: Viewer, record: AttendanceRecord, runtime: Runtime
) -> AttendanceOut:
    """Record presence (or hours) per day; a day recorded again is replaced."""
    enrolment = access.visible_enrolment(viewer, repo.enrolment(enrolment_id))
    access.ensure_may_record_attendance(viewer)
    now = runtime.now()
    existing = enrolment.as_existing(_status(repo, enrolment))
    errors: list[FieldError] = []
    days: list[RecordedDay] = []
    seen: set[date] = set()
    for index, item in enumerate(record.entries):
        if item.day in seen:
            errors.append({"field": f"entries.{index}.day", "message": f"Il giorno {format_date(item.day)} è ripetuto"})
            continue
        seen.add(item.day)
        try:
            entry = attendance.AttendanceEntry.model_validate(
                {"enrolment_id": enrolment_id, "day": item.day, "present": item.present, "hours": item.hours}
            )
        except ValidationError as exc:
            errors += validation_failed_from_pydantic(exc, f"entries.{index}.").errors
            continue
        problems = attendance.attendance_problems(entry, existing, now.astimezone(ROME).date())
        errors += [{"field": f"entries.{index}.day", "message": problem} for problem in problems]
        days.append(RecordedDay(entry.day, entry.present, entry.hours, viewer.subject, now))
    if errors:
        raise ValidationFailed("Le presenze non possono essere registrate.", errors)
    repo.record_attendance(enrolment_id, days)
    return _attendance_out(repo, enrolment)


def attendance_register(repo: Repository, offering_id: str, month: str, viewer: Viewer) -> RegisterExport:
    """The month's register of an offering as a semicolon CSV (codici fiscali masked)."""
    match = _MONTH.match(month)
    if match is None:
        raise ValidationFailed(
            "Mese non valido.", [{"field": "month", "message": "indicare il mese come AAAA-MM, es. 2027-03"}]
        )
    year, number = int(match.group(1)), int(match.group(2))
    offering = access.staff_offering(viewer, repo.offering(offering_id))
    seats = repo.seats_snapshot(offering_id) or OfferingSeats(offering_id)
    first = date(year, number, 1)
    last = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    month_period = Period(start=first, end=last)
    # Children ever admitted (confirmed now, or cancelled since): the waitlist keeps no register.
    admitted = [*seats.confirmed, *seats.cancelled]
    records = [
        r
        for r in repo.enrolments(admitted)
        if seats.status_of(r.id) in attendance.STATUSES_WITH_ATTENDANCE and r.period.overlaps(month_period)
    ]
    stored = repo.attendance_of_month([r.id for r in records], month)
    rows = []
    for record in records:
        entries = _entries(record.id, [stored[record.id]] if record.id in stored else [])
        if seats.status_of(record.id) is EnrolmentStatus.CANCELLED and not entries:
            continue  # cancelled before attending this month: not on the register
        rows.append(
            attendance.RegisterRow(
                child_display_name=f"{record.child_last_name} {record.child_first_name}",
                child_codice_fiscale=record.child_codice_fiscale,
                enrolment_id=record.id,
                entries=tuple(entries),
            )
        )
    rows.sort(key=lambda r: (r.child_display_name.casefold(), r.enrolment_id))
    slug = re.sub(r"[^a-z0-9]+", "-", offering.title.casefold()).strip("-")[:40] or "servizio"
    return RegisterExport(
        filename=f"registro-presenze-{slug}-{month}.csv", content=attendance.register_csv(rows, year, number)
    )
