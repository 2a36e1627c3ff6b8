"""Catalog rules: offering validation, ages, calendars, status, publishing, capacity.

Data follow the seeds: Marnate's "Post scuola DSA/ADHD/BES" (project "Work Life
Balance: crescere insieme cooperando") and Castellanza's "Estate in biblioteca".
"""

from datetime import date, time
from typing import Any

import pytest
from pydantic import ValidationError

from conciliare.contracts.offerings import (
    MAX_AGE_MONTHS,
    AgeRange,
    Calendar,
    CalendarPeriod,
    OfferingSpec,
    Price,
    WeeklySlot,
    format_cents,
)
from conciliare.contracts.taxonomy import (
    AttendanceMode,
    OfferingStatus,
    PeriodKind,
    PriceUnit,
    SchoolLevel,
    ServiceType,
    SpecialNeed,
)
from services.catalog.domain import (
    ALLOWED_TRANSITIONS,
    CapacityBelowConfirmed,
    CatalogError,
    InvalidTransition,
    NotEditable,
    NotPublishable,
    accepts_age,
    age_in_months,
    change_status,
    check_update,
    ensure_publishable,
    is_open_between,
    is_open_on,
    periods_overlapping,
    transition,
    upcoming_start,
    validate_capacity_change,
)

MARNATE = "012098"
CASTELLANZA = "012042"
TODAY = date(2025, 9, 1)

# School year 2025/26 in Lombardy, with Easter 2026 on 5 April.
TERM = {"kind": "term_time", "start": "2025-09-15", "end": "2026-06-08"}
CHRISTMAS = {"kind": "christmas", "start": "2025-12-22", "end": "2026-01-06"}
EASTER = {"kind": "easter", "start": "2026-04-02", "end": "2026-04-07"}
EASTER_MONDAY = date(2026, 4, 6)


def marnate_dsa_post_scuola(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "type": "post_scuola_dsa_adhd_bes",
        "title": "Post scuola DSA/ADHD/BES",
        "description": (
            "Post scuola per alunni e alunne della scuola primaria con DSA, ADHD e BES, "
            "con educatori dedicati e forme flessibili di frequenza."
        ),
        "comune_istat": MARNATE,
        "address": "Via Roma 1, Marnate (VA)",
        "age_range": {"min_months": 72, "max_months": 143},
        "school_levels": ["primaria"],
        "special_needs_supported": ["dsa", "adhd", "bes"],
        "calendar": {"periods": [TERM, CHRISTMAS, EASTER], "closures": ["2026-04-06"]},
        "weekly_slots": [{"weekday": d, "start": "16:30", "end": "18:00"} for d in range(1, 6)],
        "capacity": 12,
        "price": {"amount_cents": 350, "unit": "hour"},
        "attendance_modes": ["chosen_days", "hour_package"],
    }
    data.update(overrides)
    return data


def make_spec(**overrides: Any) -> OfferingSpec:
    return OfferingSpec.model_validate(marnate_dsa_post_scuola(**overrides))


def errors(data: dict[str, Any]) -> dict[tuple[str | int, ...], tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        OfferingSpec.model_validate(data)
    return {tuple(e["loc"]): (e["type"], e["msg"]) for e in info.value.errors()}


# --- Offering validation ------------------------------------------------------


def test_seed_offering_is_valid_and_normalised() -> None:
    spec = make_spec(
        title="  Post scuola DSA/ADHD/BES  ",
        special_needs_supported=["bes", "dsa", "bes", "adhd"],
        attendance_modes=["hour_package", "chosen_days", "hour_package"],
    )
    assert spec.title == "Post scuola DSA/ADHD/BES"
    # Deduplicated and in declaration order, so documents compare stably.
    assert spec.special_needs_supported == (SpecialNeed.DSA, SpecialNeed.ADHD, SpecialNeed.BES)
    assert spec.attendance_modes == (AttendanceMode.CHOSEN_DAYS, AttendanceMode.HOUR_PACKAGE)
    assert [p.kind for p in spec.calendar.periods] == [
        PeriodKind.TERM_TIME,
        PeriodKind.CHRISTMAS,
        PeriodKind.EASTER,
    ]
    assert spec.weekdays() == frozenset({1, 2, 3, 4, 5})


def test_spec_is_frozen_and_rejects_unknown_fields() -> None:
    spec = make_spec()
    with pytest.raises(ValidationError):
        spec.capacity = 99  # type: ignore[misc]
    assert ("colour",) in errors(marnate_dsa_post_scuola(colour="rosso"))


def test_json_round_trip() -> None:
    spec = make_spec()
    assert OfferingSpec.model_validate_json(spec.model_dump_json()) == spec
    dumped = spec.model_dump(mode="json")
    assert dumped["calendar"]["closures"] == ["2026-04-06"]
    assert dumped["price"] == {"amount_cents": 350, "unit": "hour"}


@pytest.mark.parametrize(
    ("overrides", "loc", "code", "fragment"),
    [
        ({"title": "  ab "}, ("title",), "title_length", "da 3 a 200 caratteri"),
        ({"title": "x" * 201}, ("title",), "title_length", "titolo"),
        ({"description": "x" * 5001}, ("description",), "description_too_long", "5000"),
        ({"comune_istat": "12098"}, ("comune_istat",), "istat_code", "6 cifre"),
        ({"comune_istat": "01209A"}, ("comune_istat",), "istat_code", "codice ISTAT"),
        ({"address": "x" * 301}, ("address",), "address_too_long", "indirizzo"),
        (
            {"age_range": {"min_months": 144, "max_months": 72}},
            ("age_range", "max_months"),
            "age_range_order",
            "l'età minima deve essere minore o uguale all'età massima",
        ),
        (
            {"age_range": {"min_months": -1, "max_months": 72}},
            ("age_range", "min_months"),
            "age_out_of_bounds",
            "tra 0 e 216 mesi",
        ),
        (
            {"age_range": {"min_months": 0, "max_months": 217}},
            ("age_range", "max_months"),
            "age_out_of_bounds",
            "216",
        ),
        ({"capacity": 0}, ("capacity",), "capacity_out_of_bounds", "tra 1 e 10000 posti"),
        ({"capacity": 10_001}, ("capacity",), "capacity_out_of_bounds", "capienza"),
        (
            {"price": {"amount_cents": -50, "unit": "hour"}},
            ("price", "amount_cents"),
            "price_negative",
            "il prezzo non può essere negativo",
        ),
        (
            {"price": {"amount_cents": 1_000_001, "unit": "flat"}},
            ("price", "amount_cents"),
            "price_too_high",
            "10.000,00 €",
        ),
        (
            {"attendance_modes": []},
            ("attendance_modes",),
            "attendance_modes_required",
            "almeno una modalità di frequenza",
        ),
        (
            {"special_needs_supported": ["disabilita"]},
            ("special_needs_supported",),
            "learning_needs_required",
            "almeno uno tra DSA, ADHD e BES",
        ),
        (
            {"school_levels": ["nido"]},
            ("school_levels",),
            "school_level_age_mismatch",
            "«nido» non è compatibile",
        ),
        (
            {"weekly_slots": [{"weekday": 8, "start": "16:30", "end": "18:00"}]},
            ("weekly_slots", 0, "weekday"),
            "weekday_out_of_bounds",
            "tra 1 (lunedì) e 7 (domenica)",
        ),
        (
            {"weekly_slots": [{"weekday": 1, "start": "18:00", "end": "16:30"}]},
            ("weekly_slots", 0, "end"),
            "slot_order",
            "l'orario di inizio deve precedere l'orario di fine",
        ),
        (
            {"weekly_slots": [{"weekday": 1, "start": "16:30", "end": "16:30"}]},
            ("weekly_slots", 0, "end"),
            "slot_order",
            "orario di inizio",
        ),
        (
            {"weekly_slots": [{"weekday": 1, "start": "16:30+01:00", "end": "18:00"}]},
            ("weekly_slots", 0, "start"),
            "time_with_timezone",
            "ora locale",
        ),
        (
            {
                "weekly_slots": [
                    {"weekday": 3, "start": "16:30", "end": "18:00"},
                    {"weekday": 3, "start": "14:00", "end": "17:00"},
                ]
            },
            ("weekly_slots",),
            "slots_overlap",
            "«mercoledì 14:00–17:00» e «mercoledì 16:30–18:00» si sovrappongono",
        ),
        (
            {"calendar": {"periods": [{"kind": "summer", "start": "2026-07-31", "end": "2026-06-15"}]}},
            ("calendar", "periods", 0, "end"),
            "period_order",
            "la data di inizio del periodo deve precedere o coincidere con la data di fine",
        ),
        (
            {
                "calendar": {
                    "periods": [
                        {"kind": "summer", "start": "2026-06-15", "end": "2026-07-10"},
                        {"kind": "summer", "start": "2026-07-10", "end": "2026-07-31"},
                    ]
                }
            },
            ("calendar", "periods"),
            "periods_overlap",
            "«estate dal 15/06/2026 al 10/07/2026» e «estate dal 10/07/2026 al 31/07/2026»",
        ),
        (
            {"calendar": {"periods": [EASTER], "closures": ["2026-05-01"]}},
            ("calendar", "closures"),
            "closure_outside_periods",
            "il giorno di chiusura 01/05/2026 non cade in nessun periodo del calendario",
        ),
    ],
)
def test_validation_errors_name_the_field_in_italian(
    overrides: dict[str, Any], loc: tuple[str | int, ...], code: str, fragment: str
) -> None:
    found = errors(marnate_dsa_post_scuola(**overrides))
    assert loc in found, found
    assert found[loc][0] == code
    assert fragment in found[loc][1]


def test_all_independent_problems_are_reported_together() -> None:
    found = errors(marnate_dsa_post_scuola(title="x", comune_istat="abc", capacity=0, attendance_modes=[]))
    assert {("title",), ("comune_istat",), ("capacity",), ("attendance_modes",)} <= set(found)


def test_missing_required_fields_are_reported() -> None:
    data = marnate_dsa_post_scuola()
    del data["price"]
    del data["attendance_modes"]
    found = errors(data)
    assert found[("price",)][0] == "missing"
    assert found[("attendance_modes",)][0] == "missing"


def test_dsa_post_scuola_needs_a_learning_need_even_when_field_omitted() -> None:
    data = marnate_dsa_post_scuola()
    del data["special_needs_supported"]
    assert errors(data)[("special_needs_supported",)][0] == "learning_needs_required"


def test_one_learning_need_is_enough_for_dsa_post_scuola() -> None:
    assert make_spec(special_needs_supported=["adhd"]).special_needs_supported == (SpecialNeed.ADHD,)


def test_plain_post_scuola_may_declare_no_needs() -> None:
    spec = make_spec(type="post_scuola", title="Post scuola", special_needs_supported=[])
    assert spec.special_needs_supported == ()


def test_different_period_kinds_may_overlap() -> None:
    spec = make_spec(
        calendar={
            "periods": [
                {"kind": "early_september", "start": "2025-09-01", "end": "2025-09-16"},
                TERM,
            ]
        }
    )
    assert len(spec.calendar.periods) == 2


def test_touching_weekly_slots_are_allowed() -> None:
    spec = make_spec(
        weekly_slots=[
            {"weekday": 2, "start": "14:00", "end": "16:00"},
            {"weekday": 2, "start": "12:30", "end": "14:00"},
        ]
    )
    assert [s.start for s in spec.weekly_slots] == [time(12, 30), time(14, 0)]


def test_closures_are_sorted_and_deduplicated() -> None:
    cal = Calendar.model_validate({"periods": [TERM], "closures": ["2025-12-08", "2025-11-01", "2025-12-08"]})
    assert cal.closures == (date(2025, 11, 1), date(2025, 12, 8))


def test_hour_package_requires_an_hourly_price() -> None:
    found = errors(marnate_dsa_post_scuola(price={"amount_cents": 1500, "unit": "day"}))
    assert found[("attendance_modes",)][0] == "hour_package_needs_hourly_price"
    # Free services have no unit to speak of.
    make_spec(price={"amount_cents": 0, "unit": "flat"})
    # Hourly price with whole attendance is fine: the cost follows from the slots.
    make_spec(attendance_modes=["full"])


def test_address_blank_becomes_none() -> None:
    assert make_spec(address="   ").address is None


def test_school_level_windows_are_generous_but_catch_mistakes() -> None:
    # Early entry to the scuola dell'infanzia at two and a half.
    make_spec(
        type="baby_parking",
        title="Baby parking",
        special_needs_supported=[],
        age_range={"min_months": 30, "max_months": 35},
        school_levels=["nido", "infanzia"],
        attendance_modes=["full"],
    )
    found = errors(marnate_dsa_post_scuola(school_levels=["primaria", "secondaria_secondo_grado"]))
    assert "scuola secondaria di secondo grado" in found[("school_levels",)][1]


def test_age_range_from_years_includes_the_whole_last_year() -> None:
    assert AgeRange.from_years(3, 6) == AgeRange(min_months=36, max_months=83)
    assert AgeRange.from_years(0, 18).max_months == MAX_AGE_MONTHS


def test_price_labels_in_italian() -> None:
    assert Price(amount_cents=350, unit=PriceUnit.HOUR).label() == "3,50 € all'ora"
    assert Price(amount_cents=0, unit=PriceUnit.WEEK).label() == "gratuito"
    assert format_cents(7_000_000) == "70.000,00 €"
    assert format_cents(5) == "0,05 €"


def test_weekly_slot_label() -> None:
    slot = WeeklySlot(weekday=5, start=time(16, 30), end=time(18, 0))
    assert slot.label() == "venerdì 16:30–18:00"


# --- Age ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("birth", "on", "months"),
    [
        (date(2020, 5, 10), date(2020, 5, 10), 0),  # born today
        (date(2020, 5, 10), date(2020, 6, 9), 0),
        (date(2020, 5, 10), date(2020, 6, 10), 1),  # monthly birthday today
        (date(2019, 5, 10), date(2025, 5, 10), 72),  # sixth birthday today
        (date(2019, 5, 10), date(2025, 5, 9), 71),  # the day before
        (date(2025, 1, 31), date(2025, 2, 27), 0),
        (date(2025, 1, 31), date(2025, 2, 28), 1),  # month too short: last day counts
        (date(2024, 1, 31), date(2024, 2, 28), 0),  # leap February has a 29th
        (date(2024, 1, 31), date(2024, 2, 29), 1),
        (date(2025, 1, 31), date(2025, 3, 30), 1),
        (date(2025, 1, 31), date(2025, 3, 31), 2),
        (date(2025, 3, 31), date(2025, 4, 30), 1),
        (date(2020, 2, 29), date(2021, 2, 28), 12),  # leap-day baby
        (date(2020, 2, 29), date(2021, 2, 27), 11),
        (date(2020, 2, 29), date(2024, 2, 28), 47),  # leap year: waits for the 29th
        (date(2020, 2, 29), date(2024, 2, 29), 48),
        (date(2012, 12, 31), date(2030, 12, 31), 216),
    ],
)
def test_age_in_completed_months(birth: date, on: date, months: int) -> None:
    assert age_in_months(birth, on) == months


def test_age_before_birth_is_an_error() -> None:
    with pytest.raises(ValueError, match="precede la data di nascita"):
        age_in_months(date(2025, 5, 10), date(2025, 5, 9))


def test_accepts_age_bounds_are_inclusive() -> None:
    primaria = AgeRange(min_months=72, max_months=143)
    birth = date(2019, 5, 10)
    assert not accepts_age(primaria, birth, date(2025, 5, 9))
    assert accepts_age(primaria, birth, date(2025, 5, 10))  # turns 6 today
    assert accepts_age(primaria, birth, date(2031, 5, 9))  # last day aged 11
    assert not accepts_age(primaria, birth, date(2031, 5, 10))  # turns 12


def test_unborn_child_is_not_accepted() -> None:
    nido = AgeRange(min_months=0, max_months=35)
    assert not accepts_age(nido, date(2026, 1, 15), date(2025, 9, 1))


# --- Calendar ---------------------------------------------------------------


def easter_calendar() -> Calendar:
    return Calendar.model_validate({"periods": [TERM, EASTER], "closures": ["2026-04-06"]})


def test_periods_overlapping_the_easter_break() -> None:
    cal = easter_calendar()
    found = periods_overlapping(cal, date(2026, 4, 2), date(2026, 4, 7))
    assert [p.kind for p in found] == [PeriodKind.TERM_TIME, PeriodKind.EASTER]
    assert periods_overlapping(cal, date(2026, 7, 1), date(2026, 7, 31)) == []
    # Both ends are inclusive.
    assert len(periods_overlapping(cal, date(2026, 4, 7), date(2026, 4, 7))) == 2
    assert periods_overlapping(cal, date(2026, 6, 9), date(2026, 6, 9)) == []


def test_open_during_easter_break_despite_easter_monday_closure() -> None:
    cal = Calendar.model_validate({"periods": [EASTER], "closures": ["2026-04-06"]})
    assert is_open_between(cal, date(2026, 4, 2), date(2026, 4, 7))
    assert not is_open_on(cal, EASTER_MONDAY)
    assert is_open_on(cal, date(2026, 4, 7))
    # Asking for Easter Monday alone: the only shared day is closed.
    assert not is_open_between(cal, EASTER_MONDAY, EASTER_MONDAY)


def test_closed_when_every_shared_day_is_a_closure() -> None:
    cal = Calendar.model_validate({"periods": [EASTER], "closures": ["2026-04-06", "2026-04-07"]})
    assert not is_open_between(cal, date(2026, 4, 6), date(2026, 4, 30))
    assert is_open_between(cal, date(2026, 4, 5), date(2026, 4, 30))


def test_closed_outside_all_periods() -> None:
    cal = easter_calendar()
    assert not is_open_between(cal, date(2026, 6, 20), date(2026, 8, 31))
    assert not is_open_on(cal, date(2025, 9, 14))
    assert is_open_on(cal, date(2025, 9, 15))


def test_weekdays_restrict_opening_days() -> None:
    cal = Calendar.model_validate({"periods": [EASTER], "closures": ["2026-04-06"]})
    mondays_only = {1}
    # The only Monday of the break is Easter Monday, which is closed.
    assert not is_open_between(cal, date(2026, 4, 2), date(2026, 4, 7), mondays_only)
    assert is_open_between(cal, date(2026, 4, 2), date(2026, 4, 7), {2})
    assert not is_open_between(cal, date(2026, 4, 2), date(2026, 4, 7), set())


def test_open_ended_range_over_a_long_calendar_is_cheap() -> None:
    cal = easter_calendar()
    assert is_open_between(cal, date(2025, 9, 1), date.max, {6, 7}) is True


def test_reversed_range_is_an_error() -> None:
    with pytest.raises(ValueError, match="data iniziale"):
        is_open_between(easter_calendar(), date(2026, 4, 7), date(2026, 4, 2))


def test_upcoming_start() -> None:
    cal = easter_calendar()
    assert upcoming_start(cal, date(2025, 9, 1)) == date(2025, 9, 15)
    assert upcoming_start(cal, date(2025, 10, 1)) == date(2025, 10, 1)  # running
    assert upcoming_start(cal, date(2026, 6, 9)) is None
    assert upcoming_start(Calendar(), TODAY) is None


# --- Status machine ----------------------------------------------------------

ALLOWED = [
    (OfferingStatus.DRAFT, OfferingStatus.PUBLISHED),
    (OfferingStatus.DRAFT, OfferingStatus.ARCHIVED),
    (OfferingStatus.PUBLISHED, OfferingStatus.SUSPENDED),
    (OfferingStatus.PUBLISHED, OfferingStatus.ARCHIVED),
    (OfferingStatus.SUSPENDED, OfferingStatus.PUBLISHED),
    (OfferingStatus.SUSPENDED, OfferingStatus.ARCHIVED),
]


@pytest.mark.parametrize(("current", "target"), ALLOWED)
def test_allowed_transitions(current: OfferingStatus, target: OfferingStatus) -> None:
    assert transition(current, target) is target


def test_allowed_transitions_table_is_exactly_the_documented_one() -> None:
    pairs = {(c, t) for c, targets in ALLOWED_TRANSITIONS.items() for t in targets}
    assert pairs == set(ALLOWED)
    assert set(ALLOWED_TRANSITIONS) == set(OfferingStatus)


@pytest.mark.parametrize(
    ("current", "target"),
    [(c, t) for c in OfferingStatus for t in OfferingStatus if (c, t) not in ALLOWED],
)
def test_forbidden_transitions(current: OfferingStatus, target: OfferingStatus) -> None:
    with pytest.raises(InvalidTransition) as info:
        transition(current, target)
    assert info.value.current is current
    assert info.value.target is target
    assert isinstance(info.value, CatalogError)


def test_transition_messages_are_italian() -> None:
    with pytest.raises(InvalidTransition, match="non è possibile passare dallo stato «bozza» allo stato «sospesa»"):
        transition(OfferingStatus.DRAFT, OfferingStatus.SUSPENDED)
    with pytest.raises(InvalidTransition, match="già nello stato «pubblicata»"):
        transition(OfferingStatus.PUBLISHED, OfferingStatus.PUBLISHED)
    with pytest.raises(InvalidTransition, match="archiviata non può più cambiare stato"):
        transition(OfferingStatus.ARCHIVED, OfferingStatus.PUBLISHED)


# --- Publishing ----------------------------------------------------------------


def test_seed_offering_is_publishable() -> None:
    ensure_publishable(make_spec(), TODAY)


def test_not_publishable_lists_every_reason() -> None:
    spec = make_spec(calendar={"periods": []}, description="  ", address=None)
    with pytest.raises(NotPublishable) as info:
        ensure_publishable(spec, TODAY)
    assert info.value.reasons == [
        "il calendario non contiene alcun periodo di apertura",
        "manca la descrizione del servizio",
        "manca l'indirizzo della sede del servizio",
    ]
    assert info.value.fields == ["calendar", "description", "address"]
    assert str(info.value).startswith("l'offerta non può essere pubblicata: ")


def test_not_publishable_once_every_period_has_ended() -> None:
    spec = make_spec()
    with pytest.raises(NotPublishable, match="non ha più giorni di apertura"):
        ensure_publishable(spec, date(2026, 6, 9))
    ensure_publishable(spec, date(2026, 6, 8))  # last day of school still counts


def test_not_publishable_when_only_closed_days_remain() -> None:
    spec = make_spec(calendar={"periods": [EASTER], "closures": ["2026-04-06", "2026-04-07"]})
    with pytest.raises(NotPublishable):
        ensure_publishable(spec, date(2026, 4, 6))


def test_home_services_need_no_address() -> None:
    spec = make_spec(
        type="baby_sitting",
        title="Baby-sitting a domicilio",
        special_needs_supported=[],
        address=None,
    )
    ensure_publishable(spec, TODAY)


def test_change_status_checks_publishability_when_publishing_or_resuming() -> None:
    incomplete = make_spec(description="")
    for current in (OfferingStatus.DRAFT, OfferingStatus.SUSPENDED):
        with pytest.raises(NotPublishable):
            change_status(current, OfferingStatus.PUBLISHED, incomplete, TODAY)
    # Suspending or archiving never needs a complete offering.
    assert (
        change_status(OfferingStatus.PUBLISHED, OfferingStatus.SUSPENDED, incomplete, TODAY) is OfferingStatus.SUSPENDED
    )
    assert change_status(OfferingStatus.DRAFT, OfferingStatus.ARCHIVED, incomplete, TODAY) is OfferingStatus.ARCHIVED
    with pytest.raises(InvalidTransition):
        change_status(OfferingStatus.ARCHIVED, OfferingStatus.PUBLISHED, make_spec(), TODAY)


# --- Capacity and edits ---------------------------------------------------------


def test_capacity_may_not_drop_below_confirmed_seats() -> None:
    validate_capacity_change(12, 12)
    validate_capacity_change(20, 0)
    with pytest.raises(CapacityBelowConfirmed) as info:
        validate_capacity_change(10, 12)
    assert str(info.value) == ("la capienza (10) non può essere inferiore ai posti già confermati (12)")
    assert (info.value.new_capacity, info.value.confirmed_count) == (10, 12)


def test_check_update_rules() -> None:
    smaller = make_spec(capacity=8)
    check_update(OfferingStatus.DRAFT, smaller, confirmed_count=0, today=TODAY)
    with pytest.raises(CapacityBelowConfirmed):
        check_update(OfferingStatus.PUBLISHED, smaller, confirmed_count=9, today=TODAY)
    with pytest.raises(NotEditable, match="«archiviata» non può essere modificata"):
        check_update(OfferingStatus.ARCHIVED, smaller, confirmed_count=0, today=TODAY)
    incomplete = make_spec(description="")
    with pytest.raises(NotPublishable):
        check_update(OfferingStatus.PUBLISHED, incomplete, confirmed_count=0, today=TODAY)
    check_update(OfferingStatus.SUSPENDED, incomplete, confirmed_count=0, today=TODAY)


def test_calendar_period_label() -> None:
    period = CalendarPeriod(kind=PeriodKind.EASTER, start=date(2026, 4, 2), end=date(2026, 4, 7))
    assert period.label() == "vacanze di Pasqua dal 02/04/2026 al 07/04/2026"


def test_school_level_enum_is_used_in_spec() -> None:
    assert make_spec().school_levels == (SchoolLevel.PRIMARIA,)
    assert make_spec().type is ServiceType.POST_SCUOLA_DSA_ADHD_BES
