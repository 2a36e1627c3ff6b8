"""Unit tests of the enrolment domain rules (no servers)."""

from datetime import UTC, date, datetime, timedelta
from itertools import product
from typing import Any, Literal

import pytest
from codicefiscale import codicefiscale
from pydantic import ValidationError

from conciliare.contracts.taxonomy import AttendanceMode, SpecialNeed
from conciliare.errors import Conflict
from services.enrolment.domain import (
    ACTIVE_STATUSES,
    ALLOWED_TRANSITIONS,
    FORMALIZED,
    NOT_FORMALIZED,
    AgeRange,
    ChildNeeds,
    ChildSpec,
    EnrolmentRequest,
    EnrolmentStatus,
    ExistingEnrolment,
    Guardian,
    HouseholdSpec,
    InvalidTransition,
    Isee,
    IseeKind,
    OfferingProjection,
    Period,
    Refusal,
    RefusalCode,
    Territory,
    age_in_months,
    apply_transition,
    check_eligibility,
    format_age,
    mask_codice_fiscale,
    merge_periods,
    new_enrolment,
    transition,
)

TODAY = date(2025, 5, 20)
MARNATE = "012098"  # ISTAT code; cadastral code E965
CASTELLANZA = "012042"
CREMA = "019035"  # Crema: outside the Castellanza alliance
ALLIANCE_COMUNI = frozenset({MARNATE, CASTELLANZA, "012067", "012108"})
ALLIANCE_PARTNERS = frozenset({"p-totem", "p-comune-marnate"})


def cf(last: str, first: str, sex: Literal["M", "F"], born: date, place: str = "E965") -> str:
    return codicefiscale.encode(
        lastname=last,
        firstname=first,
        gender=sex,
        birthdate=born.strftime("%d/%m/%Y"),
        birthplace=place,
    )


CHILD_BORN = date(2019, 3, 14)
CHILD_CF = cf("Rossi", "Giulia", "F", CHILD_BORN)
MOTHER_BORN = date(1986, 7, 2)
MOTHER_CF = cf("Bianchi", "Laura", "F", MOTHER_BORN, "C139")
FATHER_CF = cf("Rossi", "Marco", "M", date(1984, 11, 23), "F205")


def errors_of(exc: pytest.ExceptionInfo[ValidationError]) -> list[tuple[tuple[Any, ...], str]]:
    return [(e["loc"], e["type"]) for e in exc.value.errors()]


def guardian(**overrides: Any) -> Guardian:
    data: dict[str, Any] = {
        "first_name": "Laura",
        "last_name": "Bianchi",
        "codice_fiscale": MOTHER_CF,
        "birth_date": MOTHER_BORN,
        "email": "laura.bianchi@example.it",
        "phone": "+39 331 123 4567",
        "employment": "employed_elsewhere",
    }
    data.update(overrides)
    return Guardian.model_validate(data)


def household(**overrides: Any) -> HouseholdSpec:
    data: dict[str, Any] = {
        "guardians": [guardian()],
        "residence_comune_istat": MARNATE,
        "isee": {"value_cents": 1_250_000, "kind": "ordinario", "expires_on": date(2025, 12, 31)},
        "single_parent": False,
    }
    data.update(overrides)
    return HouseholdSpec.model_validate(data)


def offering(**overrides: Any) -> OfferingProjection:
    # As a catalog event would carry it: JSON types only.
    data: dict[str, Any] = {
        "offering_id": "off-1",
        "alliance_id": "all-castellanza",
        "provider_partner_id": "p-totem",
        "status": "published",
        "capacity": 20,
        "age_range": {"min_months": 72, "max_months": 143},
        "special_needs_supported": ["dsa", "adhd", "bes"],
        "attendance_modes": ["full", "chosen_days"],
        "periods": [
            ["2025-06-09", "2025-07-31"],
            {"kind": "early_september", "start": "2025-09-01", "end": "2025-09-12"},
        ],
        "comune_istat": MARNATE,
        "price": {"amount_cents": 8_000, "unit": "week"},
    }
    data.update(overrides)
    return OfferingProjection.model_validate(data)


def request(start: date = date(2025, 6, 16), end: date = date(2025, 6, 27), **kw: Any) -> EnrolmentRequest:
    data: dict[str, Any] = {
        "child_id": "child-1",
        "offering_id": "off-1",
        "period": {"start": start, "end": end},
        "attendance_mode": "full",
    }
    data.update(kw)
    return EnrolmentRequest.model_validate(data)


_seq = iter(range(1, 10_000))


def enrolment(
    start: date,
    end: date,
    status: EnrolmentStatus = EnrolmentStatus.CONFIRMED,
    *,
    child_id: str = "child-1",
    offering_id: str = "off-2",
    requested_at: datetime | None = None,
) -> ExistingEnrolment:
    seq = next(_seq)
    return ExistingEnrolment(
        enrolment_id=f"enr-{seq}",
        child_id=child_id,
        offering_id=offering_id,
        period=Period(start=start, end=end),
        attendance_mode=AttendanceMode.FULL,
        status=status,
        requested_at=requested_at or datetime(2025, 4, 1, 9, 0, tzinfo=UTC),
    )


def eligibility(
    req: EnrolmentRequest | None = None,
    *,
    birth: date = CHILD_BORN,
    needs: frozenset[SpecialNeed] = frozenset(),
    home: HouseholdSpec | None = None,
    off: OfferingProjection | None = None,
    existing: list[ExistingEnrolment] | None = None,
    today: date = TODAY,
) -> list[Refusal]:
    return check_eligibility(
        req or request(),
        birth,
        ChildNeeds(needs=needs),
        home or household(),
        off or offering(),
        ALLIANCE_COMUNI,
        ALLIANCE_PARTNERS,
        existing or [],
        today,
    )


def codes(refusals: list[Refusal]) -> list[RefusalCode]:
    return [r.code for r in refusals]


# --- codice fiscale and people -------------------------------------------------------


class TestGuardian:
    def test_valid_guardian_is_normalised(self) -> None:
        g = guardian(
            codice_fiscale=" " + MOTHER_CF.lower()[:8] + " " + MOTHER_CF.lower()[8:],
            email="Laura.Bianchi@Example.IT",
            phone="0331 / 12.34-56",
            first_name="  Laura   Maria ",
        )
        assert g.codice_fiscale == MOTHER_CF
        assert g.email == "Laura.Bianchi@example.it"
        assert g.phone == "033112345" + "6"
        assert g.first_name == "Laura Maria"

    def test_invalid_check_character_is_refused(self) -> None:
        wrong = MOTHER_CF[:-1] + ("A" if MOTHER_CF[-1] != "A" else "B")
        with pytest.raises(ValidationError) as exc:
            guardian(codice_fiscale=wrong)
        assert errors_of(exc) == [(("codice_fiscale",), "codice_fiscale_invalid")]
        assert "Codice fiscale non valido" in exc.value.errors()[0]["msg"]

    @pytest.mark.parametrize("value", ["", "RSSMRA", "12345678901", MOTHER_CF + "X"])
    def test_malformed_codice_fiscale_is_refused(self, value: str) -> None:
        with pytest.raises(ValidationError) as exc:
            guardian(codice_fiscale=value)
        assert errors_of(exc) == [(("codice_fiscale",), "codice_fiscale_invalid")]

    def test_birth_date_must_match_codice_fiscale(self) -> None:
        with pytest.raises(ValidationError) as exc:
            guardian(birth_date=MOTHER_BORN + timedelta(days=1))
        assert errors_of(exc) == [(("birth_date",), "birth_date_mismatch")]
        assert "02/07/1986" in exc.value.errors()[0]["msg"]

    def test_birth_date_is_optional(self) -> None:
        assert guardian(birth_date=None).birth_date is None

    def test_invalid_codice_fiscale_reports_one_error_only(self) -> None:
        with pytest.raises(ValidationError) as exc:
            guardian(codice_fiscale="XXXXXXXXXXXXXXXX", birth_date=date(2000, 1, 1))
        assert errors_of(exc) == [(("codice_fiscale",), "codice_fiscale_invalid")]

    def test_omocode_is_accepted_and_checked_against_birth_date(self) -> None:
        omocode = codicefiscale.decode(MOTHER_CF)["omocodes"][5]
        assert omocode != MOTHER_CF
        assert guardian(codice_fiscale=omocode).codice_fiscale == omocode
        with pytest.raises(ValidationError) as exc:
            guardian(codice_fiscale=omocode, birth_date=date(1986, 7, 3))
        assert errors_of(exc) == [(("birth_date",), "birth_date_mismatch")]

    def test_same_day_of_another_century_is_accepted(self) -> None:
        # The code carries two digits of the year: 1986 and 2086 look the same.
        born = date(1920, 5, 1)
        g = guardian(codice_fiscale=cf("Verdi", "Anna", "F", born), birth_date=born)
        assert g.birth_date == born

    def test_employer_partner_required_when_employed_by_partner(self) -> None:
        with pytest.raises(ValidationError) as exc:
            guardian(employment="employed_by_partner")
        assert errors_of(exc) == [(("employer_partner_id",), "employer_partner_required")]
        g = guardian(employment="employed_by_partner", employer_partner_id="p-totem")
        assert g.employer_partner_id == "p-totem"

    @pytest.mark.parametrize("employment", ["employed_elsewhere", "self_employed", "not_working"])
    def test_employer_partner_forbidden_otherwise(self, employment: str) -> None:
        with pytest.raises(ValidationError) as exc:
            guardian(employment=employment, employer_partner_id="p-totem")
        assert errors_of(exc) == [(("employer_partner_id",), "employer_partner_forbidden")]

    @pytest.mark.parametrize("email", ["laura", "laura@", "@example.it", "la ura@example.it", "l@x.i"])
    def test_invalid_email(self, email: str) -> None:
        with pytest.raises(ValidationError) as exc:
            guardian(email=email)
        assert errors_of(exc) == [(("email",), "email_invalid")]

    @pytest.mark.parametrize("phone", ["12345", "+39 abc 123456", "1" * 16])
    def test_invalid_phone(self, phone: str) -> None:
        with pytest.raises(ValidationError) as exc:
            guardian(phone=phone)
        assert errors_of(exc) == [(("phone",), "phone_invalid")]

    def test_unknown_fields_and_employment_values_are_refused(self) -> None:
        with pytest.raises(ValidationError):
            guardian(employment="retired")
        with pytest.raises(ValidationError):
            guardian(nickname="Lalla")

    def test_models_are_immutable(self) -> None:
        g = guardian()
        with pytest.raises(ValidationError):
            g.first_name = "Anna"  # type: ignore[misc]


class TestIseeAndHousehold:
    def test_isee(self) -> None:
        isee = Isee(value_cents=0, kind=IseeKind.MINORENNI, expires_on=date(2025, 12, 31))
        assert isee.is_valid_on(date(2025, 12, 31))
        assert not isee.is_valid_on(date(2026, 1, 1))
        with pytest.raises(ValidationError) as exc:
            Isee(value_cents=-1, kind=IseeKind.ORDINARIO, expires_on=date(2025, 12, 31))
        assert errors_of(exc) == [(("value_cents",), "isee_negative")]
        with pytest.raises(ValidationError):
            Isee.model_validate({"value_cents": 1, "kind": "corrente", "expires_on": "2025-12-31"})

    def test_valid_household_with_two_guardians(self) -> None:
        father = guardian(
            first_name="Marco",
            last_name="Rossi",
            codice_fiscale=FATHER_CF,
            birth_date=None,
            employment="employed_by_partner",
            employer_partner_id="p-totem",
        )
        h = household(guardians=[guardian(), father])
        assert len(h.guardians) == 2
        assert h.employer_partner_ids == frozenset({"p-totem"})

    @pytest.mark.parametrize("count", [0, 3])
    def test_one_or_two_guardians(self, count: int) -> None:
        others = [
            guardian(),
            guardian(codice_fiscale=FATHER_CF, birth_date=None),
            guardian(codice_fiscale=CHILD_CF, birth_date=None),
        ]
        with pytest.raises(ValidationError) as exc:
            household(guardians=others[:count])
        assert errors_of(exc) == [(("guardians",), "guardians_count")]

    def test_guardians_must_be_different_people(self) -> None:
        with pytest.raises(ValidationError) as exc:
            household(guardians=[guardian(), guardian(first_name="Laura Maria")])
        assert errors_of(exc) == [(("guardians",), "guardians_duplicate")]

    def test_single_parent_has_exactly_one_guardian(self) -> None:
        assert household(single_parent=True).single_parent
        two = [guardian(), guardian(codice_fiscale=FATHER_CF, birth_date=None)]
        with pytest.raises(ValidationError) as exc:
            household(guardians=two, single_parent=True)
        assert errors_of(exc) == [(("single_parent",), "single_parent_guardians")]

    @pytest.mark.parametrize("istat", ["12098", "0120980", "01209A", ""])
    def test_residence_istat_has_six_digits(self, istat: str) -> None:
        with pytest.raises(ValidationError) as exc:
            household(residence_comune_istat=istat)
        assert errors_of(exc) == [(("residence_comune_istat",), "istat_invalid")]

    def test_isee_is_optional(self) -> None:
        assert household(isee=None).isee is None


class TestChild:
    def child(self, today: date = TODAY, **overrides: Any) -> ChildSpec:
        data: dict[str, Any] = {
            "first_name": "Giulia",
            "last_name": "Rossi",
            "codice_fiscale": CHILD_CF,
            "birth_date": CHILD_BORN,
        }
        data.update(overrides)
        return ChildSpec.model_validate(data, context={"today": today})

    def test_valid_child_born_in_marnate(self) -> None:
        assert CHILD_CF.startswith("RSSGLI19C54E965")  # female: day 14 + 40
        child = self.child()
        assert child.birth_date == CHILD_BORN
        assert codicefiscale.decode(child.codice_fiscale)["birthplace"]["name"] == "Marnate"

    def test_birth_date_mismatch_names_the_field(self) -> None:
        with pytest.raises(ValidationError) as exc:
            self.child(birth_date=date(2019, 3, 15))
        (error,) = exc.value.errors()
        assert error["loc"] == ("birth_date",)
        assert error["type"] == "birth_date_mismatch"
        assert error["msg"] == (
            "La data di nascita 15/03/2019 non corrisponde a quella contenuta nel codice fiscale (14/03/2019)"
        )

    def test_month_mismatch_is_detected(self) -> None:
        with pytest.raises(ValidationError) as exc:
            self.child(birth_date=date(2019, 4, 14))
        assert errors_of(exc) == [(("birth_date",), "birth_date_mismatch")]

    def test_birth_date_in_the_future(self) -> None:
        born = date(2025, 6, 1)
        with pytest.raises(ValidationError) as exc:
            self.child(codice_fiscale=cf("Rossi", "Luca", "M", born), birth_date=born)
        assert errors_of(exc) == [(("birth_date",), "birth_date_in_future")]
        # born today is fine
        assert self.child(today=born, codice_fiscale=cf("Rossi", "Luca", "M", born), birth_date=born)

    def test_child_must_be_under_18(self) -> None:
        born = date(2007, 5, 20)
        code = cf("Rossi", "Luca", "M", born)
        assert self.child(today=date(2025, 5, 19), codice_fiscale=code, birth_date=born)
        with pytest.raises(ValidationError) as exc:
            self.child(today=date(2025, 5, 20), codice_fiscale=code, birth_date=born)
        assert errors_of(exc) == [(("birth_date",), "child_not_minor")]

    def test_today_defaults_to_the_clock(self) -> None:
        child = ChildSpec(first_name="Giulia", last_name="Rossi", codice_fiscale=CHILD_CF, birth_date=CHILD_BORN)
        assert child.codice_fiscale == CHILD_CF

    def test_needs_are_a_separate_model(self) -> None:
        assert ChildNeeds().needs == frozenset()
        needs = ChildNeeds.model_validate({"needs": ["dsa", "disabilita", "dsa"]})
        assert needs.needs == {SpecialNeed.DSA, SpecialNeed.DISABILITA}
        assert "needs" not in ChildSpec.model_fields
        with pytest.raises(ValidationError):
            ChildNeeds.model_validate({"needs": ["allergia"]})


class TestMask:
    def test_mask_keeps_surname_letters_and_control_character(self) -> None:
        masked = mask_codice_fiscale(CHILD_CF)
        assert masked == "RSS" + "*" * 12 + CHILD_CF[-1]
        assert len(masked) == 16
        assert "E965" not in masked and "19" not in masked

    def test_mask_normalises_and_never_leaks_odd_input(self) -> None:
        assert mask_codice_fiscale(CHILD_CF.lower()) == mask_codice_fiscale(CHILD_CF)
        assert mask_codice_fiscale("12345678901") == "*" * 11
        assert mask_codice_fiscale("") == ""


# --- ages and periods ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("born", "on", "months"),
    [
        (date(2019, 3, 14), date(2019, 3, 14), 0),
        (date(2019, 3, 14), date(2019, 4, 13), 0),
        (date(2019, 3, 14), date(2019, 4, 14), 1),
        (date(2019, 3, 14), date(2025, 5, 13), 73),
        (date(2019, 3, 14), date(2025, 5, 14), 74),
        (date(2018, 12, 15), date(2019, 1, 14), 0),
        (date(2018, 12, 15), date(2019, 1, 15), 1),
        # month ends: the month completes on the last day of a shorter month
        (date(2023, 1, 31), date(2023, 2, 27), 0),
        (date(2023, 1, 31), date(2023, 2, 28), 1),
        (date(2024, 1, 31), date(2024, 2, 28), 0),
        (date(2024, 1, 31), date(2024, 2, 29), 1),
        (date(2023, 3, 31), date(2023, 4, 30), 1),
        (date(2023, 1, 30), date(2023, 3, 29), 1),
        (date(2023, 1, 30), date(2023, 3, 30), 2),
        # leap-day births
        (date(2020, 2, 29), date(2021, 2, 27), 11),
        (date(2020, 2, 29), date(2021, 2, 28), 12),
        (date(2020, 2, 29), date(2024, 2, 28), 47),
        (date(2020, 2, 29), date(2024, 2, 29), 48),
    ],
)
def test_age_in_months(born: date, on: date, months: int) -> None:
    assert age_in_months(born, on) == months


def test_age_before_birth_is_an_error() -> None:
    with pytest.raises(ValueError):
        age_in_months(date(2020, 1, 2), date(2020, 1, 1))


@pytest.mark.parametrize(
    ("months", "text"),
    [
        (0, "0 mesi"),
        (1, "1 mese"),
        (5, "5 mesi"),
        (12, "1 anno"),
        (13, "1 anno e 1 mese"),
        (86, "7 anni e 2 mesi"),
        (72, "6 anni"),
    ],
)
def test_format_age(months: int, text: str) -> None:
    assert format_age(months) == text


@pytest.mark.parametrize(
    ("low", "high", "text"),
    [
        (72, 143, "da 6 a 11 anni"),
        (36, 71, "da 3 a 5 anni"),
        (3, 11, "da 3 mesi a 11 mesi"),
        (6, 35, "da 6 mesi a 2 anni"),
        (78, 132, "da 6 anni e 6 mesi a 11 anni"),
    ],
)
def test_age_range_description(low: int, high: int, text: str) -> None:
    assert AgeRange(min_months=low, max_months=high).describe() == text


def test_age_range_validation() -> None:
    with pytest.raises(ValidationError) as exc:
        AgeRange(min_months=72, max_months=71)
    assert errors_of(exc) == [(("max_months",), "age_range_inverted")]
    with pytest.raises(ValidationError):
        AgeRange(min_months=-1, max_months=10)


class TestPeriod:
    def test_from_pair_and_inverted(self) -> None:
        assert Period.model_validate(["2025-06-01", "2025-06-30"]) == Period(
            start=date(2025, 6, 1), end=date(2025, 6, 30)
        )
        with pytest.raises(ValidationError) as exc:
            Period(start=date(2025, 6, 2), end=date(2025, 6, 1))
        assert errors_of(exc) == [(("end",), "period_inverted")]
        assert Period(start=date(2025, 6, 1), end=date(2025, 6, 1)).contains(date(2025, 6, 1))

    def test_overlaps_with_inclusive_ends(self) -> None:
        june = Period(start=date(2025, 6, 1), end=date(2025, 6, 30))
        assert june.overlaps(Period(start=date(2025, 6, 30), end=date(2025, 7, 5)))
        assert not june.overlaps(Period(start=date(2025, 7, 1), end=date(2025, 7, 5)))
        assert june.overlaps(Period(start=date(2025, 5, 1), end=date(2025, 6, 1)))
        assert not june.overlaps(Period(start=date(2025, 5, 1), end=date(2025, 5, 31)))
        assert june.overlaps(Period(start=date(2025, 6, 10), end=date(2025, 6, 12)))

    def test_merge_periods(self) -> None:
        p = [
            Period(start=date(2025, 9, 1), end=date(2025, 9, 12)),
            Period(start=date(2025, 6, 9), end=date(2025, 6, 30)),
            Period(start=date(2025, 7, 1), end=date(2025, 7, 31)),
            Period(start=date(2025, 7, 15), end=date(2025, 7, 20)),
        ]
        assert merge_periods(p) == [
            Period(start=date(2025, 6, 9), end=date(2025, 7, 31)),
            Period(start=date(2025, 9, 1), end=date(2025, 9, 12)),
        ]
        assert merge_periods([]) == []


# --- requests ------------------------------------------------------------------------


class TestEnrolmentRequest:
    def test_full_attendance(self) -> None:
        r = request()
        assert r.attendance_mode is AttendanceMode.FULL
        assert r.chosen_weekdays is None and r.hours is None

    def test_chosen_days_require_weekdays(self) -> None:
        r = request(attendance_mode="chosen_days", chosen_weekdays=[1, 3, 5])
        assert r.chosen_weekdays == frozenset({1, 3, 5})
        for bad, code in [
            (None, "chosen_weekdays_required"),
            ([], "chosen_weekdays_required"),
            ([0, 1], "chosen_weekdays_invalid"),
            ([8], "chosen_weekdays_invalid"),
        ]:
            with pytest.raises(ValidationError) as exc:
                request(attendance_mode="chosen_days", chosen_weekdays=bad)
            assert errors_of(exc) == [(("chosen_weekdays",), code)]

    def test_weekdays_forbidden_for_other_modes(self) -> None:
        with pytest.raises(ValidationError) as exc:
            request(chosen_weekdays=[1])
        assert errors_of(exc) == [(("chosen_weekdays",), "chosen_weekdays_forbidden")]

    def test_hour_package_requires_hours(self) -> None:
        assert request(attendance_mode="hour_package", hours=10.5).hours == 10.5
        for bad, code in [
            (None, "hours_required"),
            (0, "hours_invalid"),
            (-2, "hours_invalid"),
            (10.1, "hours_invalid"),
        ]:
            with pytest.raises(ValidationError) as exc:
                request(attendance_mode="hour_package", hours=bad)
            assert errors_of(exc) == [(("hours",), code)]

    def test_hours_forbidden_for_other_modes(self) -> None:
        with pytest.raises(ValidationError) as exc:
            request(hours=10)
        assert errors_of(exc) == [(("hours",), "hours_forbidden")]

    def test_period_must_not_be_inverted(self) -> None:
        with pytest.raises(ValidationError) as exc:
            request(start=date(2025, 6, 20), end=date(2025, 6, 19))
        assert errors_of(exc) == [(("period", "end"), "period_inverted")]


# --- eligibility ---------------------------------------------------------------------


class TestEligibility:
    def test_eligible(self) -> None:
        assert eligibility() == []

    @pytest.mark.parametrize("status", ["draft", "suspended", "archived"])
    def test_offering_not_published(self, status: str) -> None:
        (refusal,) = eligibility(off=offering(status=status))
        assert refusal.code is RefusalCode.OFFERING_NOT_PUBLISHED
        assert refusal.message.startswith("Il servizio non accetta iscrizioni")

    def test_period_outside_calendar(self) -> None:
        # 1-5 September falls between the July and September periods.
        (refusal,) = eligibility(request(date(2025, 7, 28), date(2025, 9, 5)))
        assert refusal.code is RefusalCode.PERIOD_OUTSIDE_CALENDAR
        assert "dal 28/07/2025 al 05/09/2025" in refusal.message
        assert "dal 09/06/2025 al 31/07/2025, dal 01/09/2025 al 12/09/2025" in refusal.message

    def test_period_may_span_back_to_back_calendar_periods(self) -> None:
        off = offering(periods=[["2025-06-09", "2025-06-30"], ["2025-07-01", "2025-07-31"]])
        assert eligibility(request(date(2025, 6, 23), date(2025, 7, 4)), off=off) == []

    @pytest.mark.parametrize(
        ("start", "end"),
        [
            (date(2025, 6, 9), date(2025, 7, 31)),
            (date(2025, 6, 8), date(2025, 6, 20)),
            (date(2025, 7, 25), date(2025, 8, 1)),
        ],
    )
    def test_calendar_edges(self, start: date, end: date) -> None:
        result = codes(eligibility(request(start, end)))
        inside = start >= date(2025, 6, 9) and end <= date(2025, 7, 31)
        assert result == ([] if inside else [RefusalCode.PERIOD_OUTSIDE_CALENDAR])

    def test_offering_without_periods(self) -> None:
        (refusal,) = eligibility(off=offering(periods=[]))
        assert refusal.code is RefusalCode.PERIOD_OUTSIDE_CALENDAR
        assert refusal.message.endswith("nessun periodo")

    def test_period_in_past(self) -> None:
        start = date(2025, 6, 16)
        assert eligibility(request(start), today=start) == []
        (refusal,) = eligibility(request(start), today=start + timedelta(days=1))
        assert refusal.code is RefusalCode.PERIOD_IN_PAST
        assert "16/06/2025" in refusal.message and "17/06/2025" in refusal.message

    def test_age_message(self) -> None:
        # Born 14/03/2019, on 16/06/2025: 6 years and 3 months; range 3-5 years.
        off = offering(age_range={"min_months": 36, "max_months": 71})
        (refusal,) = eligibility(off=off)
        assert refusal.code is RefusalCode.AGE_OUT_OF_RANGE
        assert refusal.message == (
            "Il bambino avrà 6 anni e 3 mesi all'inizio del periodo; il servizio accoglie da 3 a 5 anni"
        )

    def test_age_message_with_the_brief_example(self) -> None:
        born = date(2018, 4, 10)  # 7 years and 2 months on 16/06/2025
        off = offering(age_range={"min_months": 24, "max_months": 71})
        (refusal,) = eligibility(birth=born, off=off)
        assert refusal.message.startswith("Il bambino avrà 7 anni e 2 mesi all'inizio del periodo")

    def test_age_minimum_reached_on_the_start_date(self) -> None:
        start = date(2025, 6, 16)
        six_today = date(2019, 6, 16)
        assert eligibility(request(start), birth=six_today) == []
        (refusal,) = eligibility(request(start), birth=six_today + timedelta(days=1))
        assert refusal.code is RefusalCode.AGE_OUT_OF_RANGE
        assert "5 anni e 11 mesi" in refusal.message

    def test_age_maximum_inclusive_until_the_next_birthday(self) -> None:
        start = date(2025, 6, 16)
        # 143 completed months (11 years 11 months) is still in; 12 years is out.
        assert eligibility(request(start), birth=date(2013, 6, 17)) == []
        (refusal,) = eligibility(request(start), birth=date(2013, 6, 16))
        assert refusal.code is RefusalCode.AGE_OUT_OF_RANGE
        assert "12 anni all'inizio" in refusal.message

    def test_age_is_measured_at_the_start_not_the_end(self) -> None:
        # Turns 12 during the period: still accepted.
        assert eligibility(request(date(2025, 6, 16), date(2025, 7, 31)), birth=date(2013, 7, 1)) == []

    def test_child_not_yet_born_at_start(self) -> None:
        off = offering(age_range={"min_months": 0, "max_months": 35})
        (refusal,) = eligibility(birth=date(2025, 7, 1), off=off)
        assert refusal.code is RefusalCode.AGE_OUT_OF_RANGE
        assert "non sarà ancora nato" in refusal.message

    def test_needs_not_supported_names_them_in_italian(self) -> None:
        (refusal,) = eligibility(
            needs=frozenset({SpecialNeed.DISABILITA, SpecialNeed.DSA}), off=offering(special_needs_supported=["adhd"])
        )
        assert refusal.code is RefusalCode.NEEDS_NOT_SUPPORTED
        assert refusal.message.endswith(": DSA, disabilità")

    def test_supported_needs_are_fine(self) -> None:
        assert eligibility(needs=frozenset({SpecialNeed.DSA, SpecialNeed.BES})) == []

    def test_resident_in_the_alliance(self) -> None:
        assert eligibility(home=household(residence_comune_istat=CASTELLANZA)) == []

    def test_not_resident_but_employed_by_a_partner(self) -> None:
        worker = guardian(employment="employed_by_partner", employer_partner_id="p-totem")
        assert eligibility(home=household(guardians=[worker], residence_comune_istat=CREMA)) == []

    def test_not_in_alliance(self) -> None:
        worker = guardian(employment="employed_by_partner", employer_partner_id="p-other-alliance")
        (refusal,) = eligibility(home=household(guardians=[worker], residence_comune_istat=CREMA))
        assert refusal.code is RefusalCode.NOT_IN_ALLIANCE
        assert "Comune dell'alleanza" in refusal.message

    @pytest.mark.parametrize("status", sorted(ACTIVE_STATUSES))
    def test_overlapping_active_enrolment(self, status: EnrolmentStatus) -> None:
        existing = [enrolment(date(2025, 6, 1), date(2025, 6, 20), status)]
        (refusal,) = eligibility(existing=existing)
        assert refusal.code is RefusalCode.OVERLAPPING_ENROLMENT
        assert "dal 01/06/2025 al 20/06/2025" in refusal.message

    def test_touching_periods_overlap_on_the_shared_day(self) -> None:
        # The request runs 16/06-27/06, both ends inclusive.
        ends_on_start = enrolment(date(2025, 6, 9), date(2025, 6, 16))
        starts_on_end = enrolment(date(2025, 6, 27), date(2025, 7, 4))
        (refusal,) = eligibility(existing=[starts_on_end, ends_on_start])
        assert refusal.code is RefusalCode.OVERLAPPING_ENROLMENT
        # one refusal listing both, in period order
        assert refusal.message.index("09/06/2025") < refusal.message.index("27/06/2025")

    def test_adjacent_periods_do_not_overlap(self) -> None:
        before = enrolment(date(2025, 6, 9), date(2025, 6, 15))
        after = enrolment(date(2025, 6, 28), date(2025, 7, 4))
        assert eligibility(existing=[before, after]) == []

    @pytest.mark.parametrize("status", [EnrolmentStatus.CANCELLED, EnrolmentStatus.COMPLETED])
    def test_inactive_enrolments_do_not_block(self, status: EnrolmentStatus) -> None:
        assert eligibility(existing=[enrolment(date(2025, 6, 1), date(2025, 6, 30), status)]) == []

    def test_other_childrens_enrolments_do_not_block(self) -> None:
        sibling = enrolment(date(2025, 6, 1), date(2025, 6, 30), child_id="child-2")
        assert eligibility(existing=[sibling]) == []

    def test_same_offering_again_is_an_overlap(self) -> None:
        again = enrolment(date(2025, 6, 16), date(2025, 6, 27), offering_id="off-1")
        assert codes(eligibility(existing=[again])) == [RefusalCode.OVERLAPPING_ENROLMENT]

    def test_attendance_mode_not_offered(self) -> None:
        (refusal,) = eligibility(request(attendance_mode="hour_package", hours=20))
        assert refusal.code is RefusalCode.ATTENDANCE_MODE_NOT_OFFERED
        assert refusal.message == (
            "La modalità «pacchetto di ore» non è prevista da questo servizio; modalità "
            "disponibili: frequenza completa, giorni a scelta"
        )

    def test_every_reason_at_once_in_a_fixed_order(self) -> None:
        off = offering(
            status="suspended",
            age_range={"min_months": 36, "max_months": 71},
            special_needs_supported=[],
            attendance_modes=["full"],
        )
        req = request(date(2025, 5, 1), date(2025, 5, 31), attendance_mode="chosen_days", chosen_weekdays=[2, 4])
        refusals = eligibility(
            req,
            needs=frozenset({SpecialNeed.ADHD}),
            home=household(residence_comune_istat=CREMA),
            off=off,
            existing=[enrolment(date(2025, 4, 1), date(2025, 5, 2))],
        )
        assert codes(refusals) == list(RefusalCode)
        assert all(r.message for r in refusals)

    def test_several_reasons(self) -> None:
        refusals = eligibility(
            needs=frozenset({SpecialNeed.DISABILITA}),
            home=household(residence_comune_istat=CREMA),
        )
        assert codes(refusals) == [RefusalCode.NEEDS_NOT_SUPPORTED, RefusalCode.NOT_IN_ALLIANCE]

    def test_offering_must_be_the_requested_one(self) -> None:
        with pytest.raises(ValueError):
            eligibility(off=offering(offering_id="off-9"))


# --- lifecycle -----------------------------------------------------------------------

ALLOWED = {
    (EnrolmentStatus.REQUESTED, EnrolmentStatus.CONFIRMED),
    (EnrolmentStatus.REQUESTED, EnrolmentStatus.WAITLISTED),
    (EnrolmentStatus.REQUESTED, EnrolmentStatus.REFUSED),  # refused is final: nothing leaves it
    (EnrolmentStatus.REQUESTED, EnrolmentStatus.CANCELLED),
    (EnrolmentStatus.WAITLISTED, EnrolmentStatus.CONFIRMED),
    (EnrolmentStatus.WAITLISTED, EnrolmentStatus.CANCELLED),
    (EnrolmentStatus.CONFIRMED, EnrolmentStatus.CANCELLED),
    (EnrolmentStatus.CONFIRMED, EnrolmentStatus.COMPLETED),
}


@pytest.mark.parametrize(("current", "target"), sorted(product(EnrolmentStatus, repeat=2)))
def test_transitions(current: EnrolmentStatus, target: EnrolmentStatus) -> None:
    assert ((current, target) in ALLOWED) == (target in ALLOWED_TRANSITIONS[current])
    if (current, target) in ALLOWED:
        assert transition(current, target) is target
    else:
        with pytest.raises(InvalidTransition) as exc:
            transition(current, target)
        assert exc.value.current is current and exc.value.target is target


def test_invalid_transition_message_and_type() -> None:
    with pytest.raises(InvalidTransition) as exc:
        transition(EnrolmentStatus.CANCELLED, EnrolmentStatus.CONFIRMED)
    assert isinstance(exc.value, Conflict)
    assert exc.value.detail == "L'iscrizione è annullata: non può diventare confermata"
    assert exc.value.args[0] == exc.value.detail


def test_apply_transition_returns_a_copy() -> None:
    waiting = enrolment(date(2025, 6, 1), date(2025, 6, 30), EnrolmentStatus.WAITLISTED)
    promoted = apply_transition(waiting, EnrolmentStatus.CONFIRMED)
    assert promoted.status is EnrolmentStatus.CONFIRMED
    assert waiting.status is EnrolmentStatus.WAITLISTED
    assert promoted.enrolment_id == waiting.enrolment_id
    with pytest.raises(InvalidTransition):
        apply_transition(promoted, EnrolmentStatus.WAITLISTED)


def test_new_enrolment_starts_requested() -> None:
    at = datetime(2025, 5, 20, 8, 30, tzinfo=UTC)
    e = new_enrolment(
        request(attendance_mode="chosen_days", chosen_weekdays=[1, 2]),
        enrolment_id="enr-new",
        requested_at=at,
    )
    assert e.status is EnrolmentStatus.REQUESTED
    assert (e.requested_at, e.chosen_weekdays) == (at, frozenset({1, 2}))


def test_requested_at_must_be_timezone_aware() -> None:
    with pytest.raises(ValidationError) as exc:
        enrolment(date(2025, 6, 1), date(2025, 6, 2), requested_at=datetime(2025, 4, 1, 9, 0))
    assert errors_of(exc) == [(("requested_at",), "requested_at_naive")]


# --- alliance territory (projection) --------------------------------------------------

AT = datetime(2025, 5, 2, 9, 0, tzinfo=UTC)


def test_territory_knows_its_comuni_once_the_alliance_is_known() -> None:
    empty = Territory("all-1")
    assert not empty.known and empty.formalized_partner_ids == frozenset()
    assert empty.with_comuni([MARNATE, CASTELLANZA]).comuni_istat == frozenset({MARNATE, CASTELLANZA})


def test_the_newest_membership_change_wins_whatever_the_arrival_order() -> None:
    formalized = Territory("all-1").with_membership("p-1", FORMALIZED, AT)
    late_withdrawal = formalized.with_membership("p-1", "withdrawn", AT - timedelta(minutes=5))
    assert late_withdrawal is formalized and late_withdrawal.formalized_partner_ids == {"p-1"}
    withdrawn = formalized.with_membership("p-1", "withdrawn", AT + timedelta(minutes=5))
    assert withdrawn.formalized_partner_ids == frozenset()


def test_healing_applies_the_partners_answer_as_of_its_time() -> None:
    territory = (
        Territory("all-1")
        .with_membership("p-old", FORMALIZED, AT - timedelta(days=1))
        .with_membership("p-new", "withdrawn", AT + timedelta(minutes=1))
    )
    healed = territory.healed([MARNATE], {"p-new", "p-other"}, AT)
    assert healed.comuni_istat == frozenset({MARNATE})
    # p-old is no longer formalized; p-new's withdrawal is newer than the answer.
    assert healed.formalized_partner_ids == {"p-other"}
    assert healed.members["p-old"].status == NOT_FORMALIZED


def test_json_round_trip_for_storage_and_events() -> None:
    # Services store and ship mode="json" dumps: sets become lists, dates ISO strings.
    e = new_enrolment(
        request(attendance_mode="chosen_days", chosen_weekdays=[5, 1]),
        enrolment_id="enr-rt",
        requested_at=datetime(2025, 5, 20, 8, 30, tzinfo=UTC),
    )
    for model in (e, offering(), household(), ChildNeeds(needs=frozenset({SpecialNeed.BES}))):
        dumped = model.model_dump(mode="json")
        assert type(model).model_validate(dumped) == model
