"""Partners use cases with an in-memory repository: optimistic concurrency, no servers.

The fake keeps MongoDB's contract for the guarded writes (``{"_id": id, "version": v}``
matches only the version the writer read, and every write bumps it), and lets a test
slip "another writer" in between a use case's read and its write.
"""

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from conciliare.chassis import concurrency
from conciliare.contracts.common import IntegrationEvent
from conciliare.contracts.partners import (
    AllianceStatus,
    Ambito,
    MemberAdd,
    Membership,
    MembershipChanged,
    MembershipRole,
    MembershipStatus,
    PartnerKind,
    ProjectSpec,
    ProjectUpdated,
)
from conciliare.demo.data import CASTELLANZA
from conciliare.errors import Conflict, NotFound
from services.partners import usecases
from services.partners.repository import Alliance, Partner, PartnersRepository, Project

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
ALLIANCE_ID = "alleanza-castellanza"
PROJECT_ID = "progetto-wlb"


def partner(partner_id: str) -> Partner:
    return Partner(
        id=partner_id,
        kind=PartnerKind.COMUNE,
        name=f"Comune {partner_id}",
        tax_code="00000000000",
        comune_istat="012042",
        email=None,
        family_friendly=False,
        created_at=NOW,
    )


def membership(partner_id: str, role: MembershipRole = MembershipRole.PARTNER) -> Membership:
    return Membership(partner_id=partner_id, role=role, status=MembershipStatus.FORMALIZED, joined_at=NOW)


class FakeRepository:
    """The subset of ``PartnersRepository`` the write paths use, in memory."""

    def __init__(self) -> None:
        self.partners = {pid: partner(pid) for pid in ("capofila", "marnate", "fagnano", "totem")}
        self.alliance = Alliance(
            id=ALLIANCE_ID,
            code="CASTELLANZA",
            name="Alleanza locale di Castellanza",
            status=AllianceStatus.ACTIVE,
            ambiti=[Ambito(name="Ambito di Castellanza", comuni_istat=["012042"])],
            capofila_partner_id="capofila",
            members=[membership("capofila", MembershipRole.CAPOFILA)],
            version=1,
            created_at=NOW,
        )
        self.project = Project(
            id=PROJECT_ID,
            alliance_id=ALLIANCE_ID,
            spec=ProjectSpec.model_validate(CASTELLANZA.project),
            created_at=NOW,
            updated_at=NOW,
            version=1,
        )
        self.events: list[IntegrationEvent] = []
        self.write_attempts = 0
        # Run once before the next guarded write: another writer getting there first.
        self.interleave: list[Callable[[], None]] = []

    def _race(self) -> None:
        self.write_attempts += 1
        if self.interleave:
            self.interleave.pop(0)()

    # --- what the use cases call ------------------------------------------------

    def get_partner(self, partner_id: str) -> Partner | None:
        return self.partners.get(partner_id)

    def get_alliance(self, alliance_id: str) -> Alliance | None:
        return self.alliance if alliance_id == ALLIANCE_ID else None

    def save_members(
        self, alliance_id: str, expected_version: int, members: list[Membership], events: list[IntegrationEvent]
    ) -> bool:
        self._race()
        if self.alliance.version != expected_version:
            return False
        self.alliance = dataclasses.replace(self.alliance, members=list(members), version=expected_version + 1)
        self.events += events
        return True

    def get_project(self, alliance_id: str, project_id: str) -> Project | None:
        if project_id != PROJECT_ID or alliance_id != ALLIANCE_ID:
            return None
        return self.project

    def replace_project(
        self,
        project_id: str,
        expected_version: int,
        spec: ProjectSpec,
        updated_at: datetime,
        events: list[IntegrationEvent],
    ) -> Project | None:
        self._race()
        if self.project.version != expected_version:
            return None
        self.project = dataclasses.replace(self.project, spec=spec, updated_at=updated_at, version=expected_version + 1)
        self.events += events
        return self.project

    # --- "another writer" ----------------------------------------------------------

    def someone_adds(self, partner_id: str) -> Callable[[], None]:
        def write() -> None:
            members = [*self.alliance.members, membership(partner_id)]
            self.alliance = dataclasses.replace(self.alliance, members=members, version=self.alliance.version + 1)

        return write

    def someone_edits_project(self) -> None:
        spec = self.project.spec.model_copy(update={"title": "Titolo cambiato da un collega"})
        self.project = dataclasses.replace(self.project, spec=spec, version=self.project.version + 1)


@pytest.fixture
def fake() -> FakeRepository:
    return FakeRepository()


@pytest.fixture
def repo(fake: FakeRepository) -> PartnersRepository:
    return cast(PartnersRepository, fake)


@pytest.fixture(autouse=True)
def no_pauses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    pauses: list[int] = []
    monkeypatch.setattr(concurrency, "pause_before", lambda attempt: pauses.append(attempt) or 0.0)
    return pauses


def add(repo: PartnersRepository, partner_id: str) -> Any:
    return usecases.add_member(repo, ALLIANCE_ID, MemberAdd(partner_id=partner_id), NOW)


class TestMemberChanges:
    def test_a_lost_race_is_decided_again_on_fresh_data(
        self, fake: FakeRepository, repo: PartnersRepository, no_pauses: list[int]
    ) -> None:
        fake.interleave = [fake.someone_adds("fagnano")]
        added = add(repo, "marnate")
        assert added.partner.id == "marnate"
        # Both stick: the other writer's member was re-read, not overwritten.
        assert {m.partner_id for m in fake.alliance.members} == {"capofila", "fagnano", "marnate"}
        assert fake.alliance.version == 3 and fake.write_attempts == 2 and no_pauses == [1]
        assert [type(e) for e in fake.events] == [MembershipChanged]

    def test_the_rule_is_applied_to_what_won(self, fake: FakeRepository, repo: PartnersRepository) -> None:
        # The concurrent writer added the same partner: now it is a member already.
        fake.interleave = [fake.someone_adds("marnate")]
        with pytest.raises(Conflict, match="già membro"):
            add(repo, "marnate")
        assert fake.events == []

    def test_gives_up_after_bounded_attempts_with_a_conflict(
        self, fake: FakeRepository, repo: PartnersRepository, no_pauses: list[int]
    ) -> None:
        fake.interleave = [fake.someone_adds(f"p{n}") for n in range(100)]
        with pytest.raises(Conflict) as raised:
            add(repo, "marnate")
        assert raised.value.detail == concurrency.BUSY
        assert fake.write_attempts == concurrency.WRITE_ATTEMPTS
        assert no_pauses == list(range(1, concurrency.WRITE_ATTEMPTS))
        assert "marnate" not in {m.partner_id for m in fake.alliance.members}

    def test_unknown_alliance(self, repo: PartnersRepository) -> None:
        with pytest.raises(NotFound):
            usecases.add_member(repo, "nessuna", MemberAdd(partner_id="marnate"), NOW)


class TestProjectUpdates:
    def spec(self) -> ProjectSpec:
        return ProjectSpec.model_validate({**CASTELLANZA.project, "title": "Work Life Balance 2027"})

    def test_with_the_current_version(self, fake: FakeRepository, repo: PartnersRepository) -> None:
        out = usecases.update_project(repo, ALLIANCE_ID, PROJECT_ID, self.spec(), NOW, expected_version=1)
        assert out.version == 2 and out.title == "Work Life Balance 2027"
        (event,) = fake.events
        assert isinstance(event, ProjectUpdated) and event.version == 2

    def test_a_stale_version_is_a_conflict(self, fake: FakeRepository, repo: PartnersRepository) -> None:
        fake.someone_edits_project()
        with pytest.raises(Conflict) as raised:
            usecases.update_project(repo, ALLIANCE_ID, PROJECT_ID, self.spec(), NOW, expected_version=1)
        assert raised.value.errors == [{"field": "version", "message": "versione attuale: 2"}]
        assert fake.write_attempts == 0 and fake.events == []

    def test_losing_the_race_for_the_same_version_is_a_conflict(
        self, fake: FakeRepository, repo: PartnersRepository
    ) -> None:
        fake.interleave = [fake.someone_edits_project]
        with pytest.raises(Conflict, match="modificato da qualcun altro"):
            usecases.update_project(repo, ALLIANCE_ID, PROJECT_ID, self.spec(), NOW, expected_version=1)
        assert fake.project.spec.title == "Titolo cambiato da un collega"
        assert fake.write_attempts == 1 and fake.events == []

    def test_without_a_version_the_last_writer_wins_whole(self, fake: FakeRepository, repo: PartnersRepository) -> None:
        fake.interleave = [fake.someone_edits_project]
        out = usecases.update_project(repo, ALLIANCE_ID, PROJECT_ID, self.spec(), NOW)
        assert out.version == 3 and out.title == "Work Life Balance 2027"
        (event,) = fake.events
        assert isinstance(event, ProjectUpdated) and event.version == 3

    def test_another_alliance_does_not_see_it(self, repo: PartnersRepository) -> None:
        with pytest.raises(NotFound):
            usecases.update_project(repo, "altra-alleanza", PROJECT_ID, self.spec(), NOW, expected_version=1)
