"""Unit tests of attendance registers (no servers)."""

import csv
import io
from datetime import UTC, date, datetime
from typing import Any

import pytest
from codicefiscale import codicefiscale
from pydantic import ValidationError

from conciliare.contracts.taxonomy import AttendanceMode
from services.enrolment.attendance import (
    AttendanceEntry,
    InvalidAttendance,
    RegisterRow,
    Totals,
    attendance_problems,
    format_hours,
    monthly_totals,
    register_csv,
    validate_attendance,
)
from services.enrolment.domain import EnrolmentStatus, ExistingEnrolment, Period

TODAY = date(2025, 4, 30)
GIULIA_CF = codicefiscale.encode(
    lastname="Rossi", firstname="Giulia", gender="F", birthdate="14/03/2019", birthplace="E965"
)
NICCOLO_CF = codicefiscale.encode(
    lastname="Colombo", firstname="Niccolò", gender="M", birthdate="02/10/2017", birthplace="C139"
)


def entry(
    day: int, present: bool = True, hours: float | None = None, eid: str = "enr-1", month: int = 4
) -> AttendanceEntry:
    return AttendanceEntry(enrolment_id=eid, day=date(2025, month, day), present=present, hours=hours)


def enrolment(mode: AttendanceMode = AttendanceMode.FULL, **overrides: Any) -> ExistingEnrolment:
    data: dict[str, Any] = {
        "enrolment_id": "enr-1",
        "child_id": "child-1",
        "offering_id": "off-1",
        "period": Period(start=date(2025, 4, 7), end=date(2025, 6, 6)),
        "attendance_mode": mode,
        "hours": 40 if mode is AttendanceMode.HOUR_PACKAGE else None,
        "status": EnrolmentStatus.CONFIRMED,
        "requested_at": datetime(2025, 3, 1, tzinfo=UTC),
    }
    data.update(overrides)
    return ExistingEnrolment.model_validate(data)


def parse(text: str) -> list[list[str]]:
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:], newline=""), delimiter=";"))


class TestEntry:
    @pytest.mark.parametrize("hours", [0.25, 2.5, 3, 11.75, 12])
    def test_valid_hours(self, hours: float) -> None:
        assert entry(8, hours=hours).hours == hours

    @pytest.mark.parametrize("hours", [0, -1, 0.1, 2.3, 12.25, 13])
    def test_invalid_hours(self, hours: float) -> None:
        with pytest.raises(ValidationError) as exc:
            entry(8, hours=hours)
        assert [e["type"] for e in exc.value.errors()] == ["attendance_hours_invalid"]

    def test_no_hours_when_absent(self) -> None:
        with pytest.raises(ValidationError) as exc:
            entry(8, present=False, hours=2)
        (error,) = exc.value.errors()
        assert (error["loc"], error["type"]) == (("hours",), "hours_when_absent")
        assert entry(8, present=False, hours=0).hours is None
        assert entry(8, present=False).hours is None


class TestProblems:
    def test_valid_entry(self) -> None:
        e = entry(8)
        assert attendance_problems(e, enrolment(), TODAY) == []
        assert validate_attendance(e, enrolment(), TODAY) is e

    def test_day_outside_the_enrolment_period(self) -> None:
        (problem,) = attendance_problems(entry(4), enrolment(), TODAY)
        assert problem == ("Il giorno 04/04/2025 è fuori dal periodo dell'iscrizione (dal 07/04/2025 al 06/06/2025)")
        assert attendance_problems(entry(7), enrolment(), TODAY) == []

    def test_day_in_the_future(self) -> None:
        e = entry(30)
        assert attendance_problems(e, enrolment(), TODAY) == []
        assert attendance_problems(e, enrolment(), date(2025, 4, 29)) == ["Il giorno 30/04/2025 è nel futuro"]

    def test_hour_package_needs_hours_for_presences(self) -> None:
        package = enrolment(AttendanceMode.HOUR_PACKAGE)
        assert attendance_problems(entry(8), package, TODAY) == ["Per il pacchetto di ore indicare le ore di presenza"]
        assert attendance_problems(entry(8, hours=2.5), package, TODAY) == []
        assert attendance_problems(entry(8, present=False), package, TODAY) == []

    @pytest.mark.parametrize("status", [EnrolmentStatus.REQUESTED, EnrolmentStatus.WAITLISTED])
    def test_only_admitted_children_have_attendance(self, status: EnrolmentStatus) -> None:
        assert attendance_problems(entry(8), enrolment(status=status), TODAY) == [
            "Le presenze si registrano solo per iscrizioni confermate"
        ]

    def test_all_problems_at_once(self) -> None:
        package = enrolment(AttendanceMode.HOUR_PACKAGE, status=EnrolmentStatus.WAITLISTED)
        with pytest.raises(InvalidAttendance) as exc:
            validate_attendance(entry(10, month=6), package, TODAY)
        assert len(exc.value.problems) == 4
        assert isinstance(exc.value, ValueError)

    def test_entry_of_another_enrolment(self) -> None:
        with pytest.raises(ValueError):
            attendance_problems(entry(8, eid="enr-2"), enrolment(), TODAY)


class TestMonthlyTotals:
    def test_totals_per_enrolment(self) -> None:
        entries = [
            entry(7, hours=2.5),
            entry(8, hours=1.25),
            entry(9, present=False),
            entry(10),
            entry(7, eid="enr-2", present=False),
            entry(8, eid="enr-2", present=False),
            entry(30, month=3),
            entry(2, month=5),
            entry(7, eid="enr-3", month=5),
        ]
        assert monthly_totals(entries, 2025, 4) == {
            "enr-1": Totals(days_present=3, hours=3.75),
            "enr-2": Totals(days_present=0, hours=0.0),
        }

    def test_duplicate_days_are_an_error(self) -> None:
        with pytest.raises(ValueError):
            monthly_totals([entry(7), entry(7, present=False)], 2025, 4)

    def test_empty(self) -> None:
        assert monthly_totals([], 2025, 4) == {}


@pytest.mark.parametrize(
    ("hours", "text"), [(2.5, "2,5"), (3.0, "3"), (1.25, "1,25"), (0.75, "0,75"), (0.0, "0"), (112.5, "112,5")]
)
def test_format_hours(hours: float, text: str) -> None:
    assert format_hours(hours) == text


class TestRegisterCsv:
    def rows(self) -> list[RegisterRow]:
        return [
            RegisterRow(
                child_display_name="Giulia Rossi",
                child_codice_fiscale=GIULIA_CF,
                enrolment_id="enr-1",
                entries=(entry(1), entry(2, present=False), entry(3), entry(31, month=3)),
            ),
            RegisterRow(
                child_display_name='Niccolò Colombo; detto "Nico"',
                child_codice_fiscale=NICCOLO_CF,
                enrolment_id="enr-2",
                entries=(entry(1, eid="enr-2", hours=2.5), entry(3, eid="enr-2", hours=1.75)),
            ),
        ]

    def test_bytes_on_the_wire(self) -> None:
        text = register_csv(self.rows(), 2025, 4)
        data = text.encode("utf-8")
        assert data.startswith(b"\xef\xbb\xbf")
        assert not data.startswith(b"\xef\xbb\xbf\xef\xbb\xbf")
        assert data.count(b"\r\n") == 4 and data.endswith(b"\r\n")
        assert b"\n" not in data.replace(b"\r\n", b"")
        assert "Niccolò".encode() in data

    def test_header(self) -> None:
        header = parse(register_csv([], 2025, 4))[0]
        assert header[:4] == ["Bambino", "Codice fiscale", "01/04", "02/04"]
        assert header[-3:] == ["30/04", "Giorni presenza", "Ore"]
        assert len(header) == 2 + 30 + 2
        assert ";".join(header).startswith("Bambino;Codice fiscale;01/04;02/04;03/04;")

    def test_february_of_a_leap_year(self) -> None:
        header = parse(register_csv([], 2024, 2))[0]
        assert header[-3] == "29/02" and len(header) == 2 + 29 + 2

    def test_rows_and_totals(self) -> None:
        header, giulia, niccolo, totals = parse(register_csv(self.rows(), 2025, 4))
        col = {name: index for index, name in enumerate(header)}
        assert giulia[0] == "Giulia Rossi"
        assert giulia[1] == "RSS" + "*" * 12 + GIULIA_CF[-1]
        assert GIULIA_CF not in register_csv(self.rows(), 2025, 4)
        assert [giulia[col["01/04"]], giulia[col["02/04"]], giulia[col["03/04"]], giulia[col["04/04"]]] == [
            "P",
            "A",
            "P",
            "",
        ]
        assert giulia[col["Giorni presenza"]] == "2" and giulia[col["Ore"]] == "0"

        assert niccolo[0] == 'Niccolò Colombo; detto "Nico"'  # quoted, survives the round trip
        assert niccolo[1] == "CLM" + "*" * 12 + NICCOLO_CF[-1]
        assert niccolo[col["01/04"]] == "2,5" and niccolo[col["03/04"]] == "1,75"
        assert niccolo[col["Giorni presenza"]] == "2" and niccolo[col["Ore"]] == "4,25"

        assert totals[:2] == ["Totale", ""]
        assert [totals[col["01/04"]], totals[col["02/04"]], totals[col["03/04"]], totals[col["04/04"]]] == [
            "2",
            "0",
            "2",
            "",
        ]
        assert totals[col["Giorni presenza"]] == "4" and totals[col["Ore"]] == "4,25"

    def test_every_row_has_every_column(self) -> None:
        table = parse(register_csv(self.rows(), 2025, 4))
        assert {len(row) for row in table} == {34}

    def test_formula_like_names_are_neutralised(self) -> None:
        row = RegisterRow(
            child_display_name='=HYPERLINK("http://x")', child_codice_fiscale=GIULIA_CF, enrolment_id="enr-1"
        )
        _, child, _ = parse(register_csv([row], 2025, 4))
        assert child[0] == '\'=HYPERLINK("http://x")'

    def test_no_rows_still_has_a_totals_row(self) -> None:
        header, totals = parse(register_csv([], 2025, 4))
        assert totals[0] == "Totale" and totals[-2:] == ["0", "0"]
        assert len(totals) == len(header)

    def test_entries_must_belong_to_the_row(self) -> None:
        with pytest.raises(ValidationError):
            RegisterRow(
                child_display_name="Giulia Rossi",
                child_codice_fiscale=GIULIA_CF,
                enrolment_id="enr-1",
                entries=(entry(1, eid="enr-2"),),
            )

    def test_duplicate_days_are_refused(self) -> None:
        row = RegisterRow(
            child_display_name="Giulia Rossi",
            child_codice_fiscale=GIULIA_CF,
            enrolment_id="enr-1",
            entries=(entry(1), entry(1, present=False)),
        )
        with pytest.raises(ValueError):
            register_csv([row], 2025, 4)
