"""Catalog use cases with an in-memory repository (issue 7), without servers.

- a create named by an idempotency key is made once: its retry answers the first offering;
- a draft says what it still lacks for publication (``missing_for_publication``);
- a search may span several alliances or all of them.
"""

import dataclasses
from datetime import UTC, date, datetime
from typing import Any, cast

import pytest

from conciliare.contracts.catalog import OfferingQuery
from conciliare.contracts.common import IntegrationEvent
from conciliare.contracts.offerings import OfferingSpec
from conciliare.contracts.taxonomy import OfferingStatus
from services.catalog import usecases
from services.catalog.domain import SearchCriteria, matches
from services.catalog.repository import CatalogRepository, Offering
from tests.unit.catalog.test_catalog_domain import marnate_dsa_post_scuola
from tests.unit.catalog.test_catalog_remotes import ALLIANCE, TOTEM, partners

NOW = datetime(2025, 11, 3, 9, 0, tzinfo=UTC)
TODAY = date(2025, 11, 3)


class FakeCatalog:
    def __init__(self) -> None:
        self.offerings: dict[str, Offering] = {}
        self.inserts = 0

    def get_offering(self, offering_id: str) -> Offering | None:
        return self.offerings.get(offering_id)

    def insert_offering_once(self, offering: Offering, events: list[IntegrationEvent]) -> bool:
        self.inserts += 1
        if offering.id in self.offerings:
            return False
        self.offerings[offering.id] = offering
        return True

    def search_candidates(self, criteria: SearchCriteria, statuses: Any, unpublished_only_of: Any) -> list[Offering]:
        return list(self.offerings.values())


@pytest.fixture
def fake() -> FakeCatalog:
    return FakeCatalog()


@pytest.fixture
def repo(fake: FakeCatalog) -> CatalogRepository:
    return cast(CatalogRepository, fake)


def spec(**overrides: Any) -> OfferingSpec:
    return OfferingSpec.model_validate(marnate_dsa_post_scuola(**overrides))


def create(
    repo: CatalogRepository, key: str | None = None, by: str | None = "totem.operatore", **overrides: Any
) -> Any:
    return usecases.create_offering(repo, partners(), ALLIANCE, TOTEM, spec(**overrides), NOW, key, by)


class TestIdempotentCreate:
    def test_a_retry_with_the_same_key_answers_the_first_offering(
        self, fake: FakeCatalog, repo: CatalogRepository
    ) -> None:
        first = create(repo, "chiave")
        again = create(repo, "chiave")
        assert again == first and len(fake.offerings) == 1 and fake.inserts == 1

    def test_the_id_depends_on_caller_key_alliance_and_provider(self) -> None:
        ids = {
            usecases.offering_id_for("uno", "k", ALLIANCE, TOTEM),
            usecases.offering_id_for("due", "k", ALLIANCE, TOTEM),
            usecases.offering_id_for("uno", "k2", ALLIANCE, TOTEM),
            usecases.offering_id_for("uno", "k", "altra", TOTEM),
            usecases.offering_id_for("uno", "k", ALLIANCE, "altro"),
        }
        assert len(ids) == 5
        assert usecases.offering_id_for("uno", "k", ALLIANCE, TOTEM) == usecases.offering_id_for(
            "uno", "k", ALLIANCE, TOTEM
        )

    def test_without_a_key_each_create_is_new(self, fake: FakeCatalog, repo: CatalogRepository) -> None:
        assert create(repo).id != create(repo).id and len(fake.offerings) == 2

    def test_a_concurrent_try_that_inserted_first_is_the_answer(
        self, fake: FakeCatalog, repo: CatalogRepository, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        first = create(repo, "chiave")
        original = fake.get_offering
        misses = iter([None])
        # The early look-up misses (the other try had not inserted yet); the insert collides.
        monkeypatch.setattr(fake, "get_offering", lambda offering_id: next(misses, None) or original(offering_id))
        assert create(repo, "chiave") == first and len(fake.offerings) == 1


class TestMissingForPublication:
    def test_a_complete_draft_lacks_nothing(self, repo: CatalogRepository) -> None:
        assert create(repo).missing_for_publication == []

    def test_a_draft_without_description_and_address_says_so(self, repo: CatalogRepository) -> None:
        draft = create(repo, description="", address=None)
        assert [(g.field, g.message) for g in draft.missing_for_publication] == [
            ("description", "manca la descrizione del servizio"),
            ("address", "manca l'indirizzo della sede del servizio"),
        ]

    def test_a_draft_without_periods_says_so(self, repo: CatalogRepository) -> None:
        draft = create(repo, calendar={"periods": [], "closures": []})
        assert [g.field for g in draft.missing_for_publication] == ["calendar"]

    def test_published_and_archived_offerings_list_nothing(self, fake: FakeCatalog, repo: CatalogRepository) -> None:
        draft = create(repo, description="")
        stored = fake.offerings[draft.id]
        for status in (OfferingStatus.PUBLISHED, OfferingStatus.ARCHIVED):
            assert usecases.missing_for_publication(dataclasses.replace(stored, status=status), TODAY) == []
        suspended = dataclasses.replace(stored, status=OfferingStatus.SUSPENDED)
        assert [g.field for g in usecases.missing_for_publication(suspended, TODAY)] == ["description"]


class TestSearchAcrossAlliances:
    def publish(self, fake: FakeCatalog, offering_id: str, alliance_id: str) -> None:
        fake.offerings[offering_id] = dataclasses.replace(
            fake.offerings[offering_id], status=OfferingStatus.PUBLISHED, alliance_id=alliance_id
        )

    def test_by_comune_without_an_alliance(self, fake: FakeCatalog, repo: CatalogRepository) -> None:
        here, there, draft = create(repo), create(repo), create(repo)
        self.publish(fake, here.id, ALLIANCE)
        self.publish(fake, there.id, "alleanza-castellanza")
        found = usecases.search_offerings(repo, OfferingQuery(comune_istat="012098"), NOW)
        assert {o.id for o in found.items} == {here.id, there.id} and draft.id not in {o.id for o in found.items}
        only = usecases.search_offerings(repo, OfferingQuery(alliance_ids=["alleanza-castellanza"]), NOW)
        assert [o.id for o in only.items] == [there.id]
        nowhere = usecases.search_offerings(repo, OfferingQuery(alliance_ids=[]), NOW)
        assert nowhere.total == 0

    def test_the_matching_rule_still_checks_one_alliance_when_given(self, fake: FakeCatalog) -> None:
        offering = Offering(
            id="o",
            alliance_id=ALLIANCE,
            provider_partner_id=TOTEM,
            status=OfferingStatus.PUBLISHED,
            version=1,
            spec=spec(),
            created_at=NOW,
            updated_at=NOW,
            published_at=NOW,
        )
        assert matches(offering, SearchCriteria(alliance_id=ALLIANCE))
        assert not matches(offering, SearchCriteria(alliance_id="altra"))
        assert matches(offering, SearchCriteria())
