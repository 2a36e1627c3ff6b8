"""Catalog search: tokens, criteria, matching, relevance and ordering.

The catalog is the Alleanza locale di Castellanza's (Marnate and Castellanza are in
it); a Mum Attack offering sits in another tenant and must never leak.
"""

from datetime import date
from typing import Any

import pytest
from pydantic import ValidationError

from conciliare.contracts.offerings import OfferingSpec
from conciliare.contracts.taxonomy import OfferingStatus, ServiceType, SpecialNeed
from services.catalog.domain import (
    OfferingView,
    SearchCriteria,
    matches,
    normalize_text,
    relevance,
    search_tokens,
    sort_results,
    tokenize,
)

ALLIANCE = "alleanza-castellanza"
OTHER_ALLIANCE = "alleanza-mum-attack"
MARNATE = "012098"
CASTELLANZA = "012042"
TODAY = date(2025, 9, 1)
EASTER_BREAK = (date(2026, 4, 2), date(2026, 4, 7))
EASTER_MONDAY = date(2026, 4, 6)

PRIMARIA = {"min_months": 72, "max_months": 143}
EASTER = {"kind": "easter", "start": "2026-04-02", "end": "2026-04-07"}
CHRISTMAS = {"kind": "christmas", "start": "2025-12-22", "end": "2026-01-06"}
TERM = {"kind": "term_time", "start": "2025-09-15", "end": "2026-06-08"}
SUMMER = {"kind": "summer", "start": "2026-06-15", "end": "2026-07-31"}


def view(
    offering_id: str,
    *,
    alliance_id: str = ALLIANCE,
    provider: str = "coop-totem",
    status: OfferingStatus = OfferingStatus.PUBLISHED,
    **spec: Any,
) -> OfferingView:
    data: dict[str, Any] = {
        "type": "post_scuola",
        "title": "Post scuola",
        "description": "",
        "comune_istat": MARNATE,
        "address": "Via Roma 1, Marnate (VA)",
        "age_range": PRIMARIA,
        "calendar": {"periods": [TERM]},
        "capacity": 20,
        "price": {"amount_cents": 0, "unit": "flat"},
        "attendance_modes": ["full"],
    }
    data.update(spec)
    return OfferingView(
        id=offering_id,
        alliance_id=alliance_id,
        provider_partner_id=provider,
        status=status,
        spec=OfferingSpec.model_validate(data),
    )


DSA_POST_SCUOLA = view(
    "marnate-dsa",
    type="post_scuola_dsa_adhd_bes",
    title="Post scuola DSA/ADHD/BES",
    description="Post scuola per alunni con DSA, ADHD e BES con educatori dedicati.",
    special_needs_supported=["dsa", "adhd", "bes"],
    school_levels=["primaria"],
    calendar={"periods": [TERM]},
    weekly_slots=[{"weekday": d, "start": "16:30", "end": "18:00"} for d in range(1, 6)],
    price={"amount_cents": 350, "unit": "hour"},
    attendance_modes=["chosen_days", "hour_package"],
)
ESTATE_IN_BIBLIOTECA = view(
    "castellanza-biblioteca",
    provider="comune-castellanza",
    type="estate_in_biblioteca",
    title="Estate in biblioteca",
    description="Letture animate e laboratori nella biblioteca civica durante l'estate.",
    comune_istat=CASTELLANZA,
    address="Biblioteca civica, Castellanza (VA)",
    calendar={"periods": [SUMMER]},
)
PASQUA = view(
    "marnate-pasqua",
    provider="parrocchia-sant-ilario",
    type="attivita_vacanze_scolastiche",
    title="Attività ludico-educative di Pasqua",
    description="Giochi e laboratori durante la sospensione delle lezioni.",
    calendar={"periods": [EASTER], "closures": ["2026-04-06"]},
    special_needs_supported=["disabilita"],
)
SPAZIO_COMPITI = view(
    "castellanza-compiti",
    provider="comune-castellanza",
    type="spazio_compiti",
    title="Spazio compiti",
    description="Aiuto nei compiti durante le vacanze di Natale e di Pasqua, in biblioteca.",
    comune_istat=CASTELLANZA,
    calendar={"periods": [CHRISTMAS, EASTER]},
    special_needs_supported=["dsa"],
)
DRAFT = view(
    "marnate-bozza",
    status=OfferingStatus.DRAFT,
    title="Laboratori pomeridiani",
    type="laboratorio_pomeridiano",
)
FOREIGN = view(
    "mum-attack-biblioteca",
    alliance_id=OTHER_ALLIANCE,
    type="estate_in_biblioteca",
    title="Estate in biblioteca",
    calendar={"periods": [SUMMER]},
)
CATALOG = [DSA_POST_SCUOLA, ESTATE_IN_BIBLIOTECA, PASQUA, SPAZIO_COMPITI, DRAFT, FOREIGN]


def search(**criteria: Any) -> list[str]:
    parsed = SearchCriteria.model_validate({"alliance_id": ALLIANCE, **criteria})
    return [v.id for v in CATALOG if matches(v, parsed)]


# --- Tokens ------------------------------------------------------------------


def test_tokens_are_lowercase_accentless_and_without_stopwords() -> None:
    assert tokenize("Attività ludico-educative") == ["attivita", "ludico", "educative"]
    assert tokenize("Spazio compiti per i ragazzi e le ragazze della scuola") == [
        "spazio",
        "compiti",
        "ragazzi",
        "ragazze",
        "scuola",
    ]
    assert tokenize("Scuola dell’infanzia, PERCHÉ sì: 3 anni") == [
        "scuola",
        "infanzia",
        "perche",
        "anni",
    ]
    assert tokenize("di e il la per dei delle") == []
    assert tokenize("Estate ESTATE estate 2026") == ["estate", "2026"]


def test_normalize_text_strips_accents_and_case() -> None:
    assert normalize_text("Disabilità ÀÉÌÒÙ") == "disabilita aeiou"


def test_search_tokens_cover_title_type_and_description() -> None:
    tokens = search_tokens(PASQUA.spec)
    assert tokens[:4] == ["attivita", "ludico", "educative", "pasqua"]
    assert {"vacanze", "scolastiche", "giochi", "sospensione", "lezioni"} <= set(tokens)
    assert len(tokens) == len(set(tokens))
    assert "di" not in tokens and "delle" not in tokens


# --- Criteria validation ------------------------------------------------------


@pytest.mark.parametrize(
    ("criteria", "loc", "code"),
    [
        ({"child_birth_date": "2019-05-10"}, "on_date", "on_date_required"),
        ({"on_date": "2026-04-02"}, "on_date", "birth_date_required"),
        (
            {"child_birth_date": "2019-05-10", "on_date": "2019-05-09"},
            "on_date",
            "on_date_before_birth",
        ),
        (
            {"child_birth_date": "2019-05-10", "on_date": "2026-04-02", "child_age_months": 80},
            "child_age_months",
            "age_given_twice",
        ),
        ({"child_age_months": 217}, "child_age_months", "age_out_of_bounds"),
        ({"date_from": "2026-04-07", "date_to": "2026-04-02"}, "date_to", "date_range_order"),
        ({"comune_istat": "Marnate"}, "comune_istat", "istat_code"),
        ({"text": "x" * 201}, "text", "search_text_too_long"),
        ({"alliance_id": "  "}, "alliance_id", "alliance_required"),
        ({"needs": ["celiachia"]}, "needs", "enum"),
    ],
)
def test_invalid_criteria(criteria: dict[str, Any], loc: str, code: str) -> None:
    with pytest.raises(ValidationError) as info:
        SearchCriteria.model_validate({"alliance_id": ALLIANCE, **criteria})
    found = {e["loc"][0]: e for e in info.value.errors()}
    assert found[loc]["type"] == code
    if code != "enum":
        assert found[loc]["msg"][0].islower()  # Italian sentence, not pydantic's English


def test_without_an_alliance_every_alliance_is_searched() -> None:
    # Families search by Comune across alliances (issue 7): the alliance is optional now.
    everywhere = SearchCriteria.model_validate({"only_published": False})
    assert {v.id for v in CATALOG if matches(v, everywhere)} == {v.id for v in CATALOG}
    published = SearchCriteria.model_validate({})
    assert FOREIGN.id in {v.id for v in CATALOG if matches(v, published)}
    assert DRAFT.id not in {v.id for v in CATALOG if matches(v, published)}


def test_any_of_several_alliances() -> None:
    only_other = SearchCriteria(alliance_ids=(OTHER_ALLIANCE,))
    assert [v.id for v in CATALOG if matches(v, only_other)] == [FOREIGN.id]
    none = SearchCriteria(alliance_ids=())
    assert [v.id for v in CATALOG if matches(v, none)] == []
    both = SearchCriteria(alliance_ids=(ALLIANCE, OTHER_ALLIANCE), comune_istat=FOREIGN.spec.comune_istat)
    assert FOREIGN.id in [v.id for v in CATALOG if matches(v, both)]


def test_blank_text_means_no_text() -> None:
    assert SearchCriteria(alliance_id=ALLIANCE, text="   ").text is None


def test_child_age_from_birth_date_or_months() -> None:
    by_birth = SearchCriteria(alliance_id=ALLIANCE, child_birth_date=date(2019, 5, 10), on_date=date(2026, 4, 2))
    assert by_birth.child_age() == 82
    assert SearchCriteria(alliance_id=ALLIANCE, child_age_months=30).child_age() == 30
    assert SearchCriteria(alliance_id=ALLIANCE).child_age() is None


# --- Matching ---------------------------------------------------------------


def test_search_never_crosses_alliances_and_hides_drafts() -> None:
    assert search() == [
        "marnate-dsa",
        "castellanza-biblioteca",
        "marnate-pasqua",
        "castellanza-compiti",
    ]
    assert search(only_published=False) == [
        "marnate-dsa",
        "castellanza-biblioteca",
        "marnate-pasqua",
        "castellanza-compiti",
        "marnate-bozza",
    ]


def test_filter_by_comune_provider_and_type() -> None:
    assert search(comune_istat=CASTELLANZA) == ["castellanza-biblioteca", "castellanza-compiti"]
    assert search(provider_partner_id="parrocchia-sant-ilario") == ["marnate-pasqua"]
    assert search(types=["spazio_compiti", "estate_in_biblioteca"]) == [
        "castellanza-biblioteca",
        "castellanza-compiti",
    ]


def test_every_requested_need_must_be_supported() -> None:
    assert search(needs=["dsa"]) == ["marnate-dsa", "castellanza-compiti"]
    assert search(needs=["dsa", "adhd"]) == ["marnate-dsa"]
    assert search(needs=[SpecialNeed.DISABILITA]) == ["marnate-pasqua"]


def test_filter_by_child_age_on_a_date() -> None:
    # Born 10 May 2020: aged 5 (71 months) on 9 May 2026 and 6 on 10 May 2026.
    birth = "2020-05-10"
    assert search(child_birth_date=birth, on_date="2026-05-09") == []
    assert len(search(child_birth_date=birth, on_date="2026-05-10")) == 4
    assert search(child_age_months=30) == []


def test_easter_break_search() -> None:
    start, end = EASTER_BREAK
    assert search(date_from=start, date_to=end) == [
        "marnate-dsa",  # term time covers 2 and 7 April
        "marnate-pasqua",
        "castellanza-compiti",
    ]
    # Easter Monday alone: the parish activities are closed; the other two declared
    # no closure that day (and Monday is one of the post scuola's weekdays).
    assert search(date_from=EASTER_MONDAY, date_to=EASTER_MONDAY) == [
        "marnate-dsa",
        "castellanza-compiti",
    ]
    assert search(date_from=EASTER_MONDAY, date_to=EASTER_MONDAY, types=["attivita_vacanze_scolastiche"]) == []


def test_weekly_slots_restrict_matching_days() -> None:
    saturday = date(2025, 10, 4)
    assert "marnate-dsa" not in search(date_from=saturday, date_to=saturday)
    # The summer offering has no weekly timetable: every period day counts.
    sunday = date(2026, 6, 21)
    assert search(date_from=sunday, date_to=sunday) == ["castellanza-biblioteca"]


def test_open_ended_date_ranges() -> None:
    assert search(date_from="2026-06-09") == ["castellanza-biblioteca"]
    assert search(date_to="2025-09-14") == []
    assert search(date_to="2025-12-22") == ["marnate-dsa", "castellanza-compiti"]


def test_text_is_accent_and_case_insensitive_and_prefix_based() -> None:
    assert search(text="ATTIVITÀ") == ["marnate-pasqua"]
    assert search(text="attivita ludiche") == []  # "ludiche" is not a prefix of "ludico"
    assert search(text="ludic") == ["marnate-pasqua"]
    assert search(text="biblio") == ["castellanza-biblioteca", "castellanza-compiti"]
    assert search(text="biblioteca estate") == ["castellanza-biblioteca"]
    assert search(text="DSA") == ["marnate-dsa"]


def test_text_matches_the_type_label() -> None:
    # "vacanze scolastiche" is only in the type label of the Easter activities.
    assert search(text="vacanze scolastiche") == ["marnate-pasqua"]


def test_stopword_only_text_filters_nothing() -> None:
    assert search(text="per il") == search()


def test_combined_criteria() -> None:
    start, end = EASTER_BREAK
    assert search(
        date_from=start,
        date_to=end,
        child_birth_date="2018-03-01",
        on_date=start,
        comune_istat=CASTELLANZA,
        needs=["dsa"],
        text="compiti",
    ) == ["castellanza-compiti"]


# --- Relevance and ordering -------------------------------------------------


def test_relevance_weights() -> None:
    # Whole title word beats title prefix beats description word beats description prefix.
    title_word = relevance(ESTATE_IN_BIBLIOTECA, "biblioteca")
    title_prefix = relevance(ESTATE_IN_BIBLIOTECA, "biblio")
    description_word = relevance(SPAZIO_COMPITI, "biblioteca")
    description_prefix = relevance(SPAZIO_COMPITI, "biblio")
    assert title_word > title_prefix > description_word > description_prefix > 0
    assert relevance(DSA_POST_SCUOLA, "biblioteca") == 0.0
    assert relevance(DSA_POST_SCUOLA, "") == 0.0
    assert relevance(DSA_POST_SCUOLA, "per la") == 0.0


def test_relevance_averages_query_tokens() -> None:
    both = relevance(ESTATE_IN_BIBLIOTECA, "estate biblioteca")
    one = relevance(ESTATE_IN_BIBLIOTECA, "estate piscina")
    assert both > one > 0


def test_sort_by_relevance_then_title() -> None:
    criteria = SearchCriteria(alliance_id=ALLIANCE, text="biblioteca")
    found = [v for v in CATALOG if matches(v, criteria)]
    assert [v.id for v in sort_results(found, criteria, TODAY)] == [
        "castellanza-biblioteca",
        "castellanza-compiti",
    ]


def test_sort_without_text_puts_soonest_first() -> None:
    criteria = SearchCriteria(alliance_id=ALLIANCE)
    found = [v for v in CATALOG if matches(v, criteria)]
    assert [v.id for v in sort_results(found, criteria, TODAY)] == [
        "marnate-dsa",  # 15 Sep 2025
        "castellanza-compiti",  # 22 Dec 2025
        "marnate-pasqua",  # 2 Apr 2026
        "castellanza-biblioteca",  # 15 Jun 2026
    ]


def test_sort_relative_to_date_from_and_running_periods_first() -> None:
    criteria = SearchCriteria(alliance_id=ALLIANCE, date_from=date(2026, 1, 7))
    found = [v for v in CATALOG if matches(v, criteria)]
    # Term time is running on 7 January; Christmas has ended for the spazio compiti,
    # whose next period is Easter, tied with the parish and broken by title.
    assert [v.id for v in sort_results(found, criteria, TODAY)] == [
        "marnate-dsa",
        "marnate-pasqua",
        "castellanza-compiti",
        "castellanza-biblioteca",
    ]


def test_offerings_with_nothing_upcoming_go_last_and_ties_break_by_id() -> None:
    ended = view("z-ended", title="Post scuola", calendar={"periods": [CHRISTMAS]})
    twin_a = view("a-twin", title="Post scuola")
    twin_b = view("b-twin", title="post scuola")
    criteria = SearchCriteria(alliance_id=ALLIANCE)
    ordered = sort_results([ended, twin_b, twin_a], criteria, date(2026, 2, 1))
    assert [v.id for v in ordered] == ["a-twin", "b-twin", "z-ended"]


def test_sort_is_generic_over_offering_like_objects() -> None:
    ordered: list[OfferingView] = sort_results(
        iter([PASQUA, DSA_POST_SCUOLA]), SearchCriteria(alliance_id=ALLIANCE), TODAY
    )
    assert ordered == [DSA_POST_SCUOLA, PASQUA]
    assert ordered[0].spec.type is ServiceType.POST_SCUOLA_DSA_ADHD_BES
