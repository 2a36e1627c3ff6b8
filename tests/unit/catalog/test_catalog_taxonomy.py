"""The fixed vocabularies: stored values are stable and every member has a label."""

from enum import StrEnum

import pytest

from conciliare.contracts.taxonomy import (
    AttendanceMode,
    OfferingStatus,
    PeriodKind,
    PriceUnit,
    SchoolLevel,
    ServiceType,
    SpecialNeed,
)

ALL_ENUMS: list[type[StrEnum]] = [
    ServiceType,
    SpecialNeed,
    SchoolLevel,
    PeriodKind,
    PriceUnit,
    AttendanceMode,
    OfferingStatus,
]


def test_service_types_are_the_seed_taxonomy() -> None:
    assert [t.value for t in ServiceType] == [
        "post_scuola",
        "post_scuola_dsa_adhd_bes",
        "spazio_compiti",
        "spazio_preadolescenti",
        "laboratorio_pomeridiano",
        "attivita_vacanze_scolastiche",
        "centro_estivo",
        "micronido",
        "centro_prima_infanzia",
        "nido_famiglia",
        "baby_sitting",
        "baby_parking",
        "ludoteca",
        "trasporto_accompagnamento",
        "percorso_genitori",
        "estate_in_biblioteca",
        "other",
    ]


@pytest.mark.parametrize("enum_cls", ALL_ENUMS, ids=lambda e: e.__name__)
def test_every_member_has_a_non_empty_italian_label(enum_cls: type[StrEnum]) -> None:
    for member in enum_cls:
        label = member.label()  # type: ignore[attr-defined]
        assert isinstance(label, str)
        assert label.strip()


def test_labels_seen_by_families() -> None:
    assert ServiceType.POST_SCUOLA_DSA_ADHD_BES.label() == "Post scuola DSA/ADHD/BES"
    assert ServiceType.ESTATE_IN_BIBLIOTECA.label() == "Estate in biblioteca"
    assert SpecialNeed.DISABILITA.label() == "disabilità con educatore di sostegno"
    assert [k.label() for k in PeriodKind] == [
        "periodo scolastico",
        "vacanze di Natale",
        "vacanze di Pasqua",
        "inizio settembre",
        "estate",
    ]
    assert OfferingStatus.SUSPENDED.label() == "sospesa"


def test_members_compare_equal_to_their_stored_strings() -> None:
    assert ServiceType("centro_estivo") is ServiceType.CENTRO_ESTIVO
    assert str(PriceUnit.HOUR) == "hour"
    assert f"{AttendanceMode.HOUR_PACKAGE}" == "hour_package"
