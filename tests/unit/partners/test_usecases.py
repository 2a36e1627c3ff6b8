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
    MemberQuery,
    Membership,
    MembershipChanged,
    MembershipRole,
    MembershipStatus,
    PartnerCreate,
    PartnerKind,
    PartnerQuery,
    ProjectSpec,
    ProjectUpdated,
)
from conciliare.demo.data import CASTELLANZA
from conciliare.errors import Conflict, NotFound
from services.partners import domain, usecases
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
        self.projects: dict[str, Project] = {}
        self.inserts = 0
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
        self,
        alliance_id: str,
        expected_version: int,
        members: list[Membership],
        events: list[IntegrationEvent],
        request: tuple[str, str] | None = None,
    ) -> bool:
        self._race()
        if self.alliance.version != expected_version:
            return False
        requests = dict(self.alliance.member_requests)
        if request is not None:
            requests[request[0]] = request[1]
        self.alliance = dataclasses.replace(
            self.alliance, members=list(members), version=expected_version + 1, member_requests=requests
        )
        self.events += events
        return True

    def insert_partner(self, new: Partner) -> None:
        self.inserts += 1
        if new.id in self.partners or any(p.tax_code == new.tax_code for p in self.partners.values()):
            raise Conflict("duplicato")
        self.partners[new.id] = new

    def partners_by_ids(self, ids: list[str]) -> dict[str, Partner]:
        return {pid: self.partners[pid] for pid in ids if pid in self.partners}

    def partner_ids_registered_by(self, subject: str) -> list[str]:
        return [p.id for p in self.partners.values() if p.registered_by == subject]

    def alliance_ids_of_partner(self, partner_id: str) -> list[str]:
        members = self.alliance.members
        active = [m for m in members if m.partner_id == partner_id and m.status is not MembershipStatus.WITHDRAWN]
        return [ALLIANCE_ID] if active else []

    def find_partners(
        self, ids: list[str] | None, kind: str | None, tax_code: str | None, text: str | None, limit: int, offset: int
    ) -> tuple[list[Partner], int]:
        found = sorted((p for p in self.partners.values() if ids is None or p.id in ids), key=lambda p: p.name)
        return found[offset : offset + limit], len(found)

    def insert_project(self, project: Project, events: list[IntegrationEvent]) -> None:
        self.inserts += 1
        if project.id in self.projects:
            raise Conflict("duplicato")
        self.projects[project.id] = project
        self.events += events

    def get_project(self, alliance_id: str, project_id: str) -> Project | None:
        if project_id in self.projects:
            found = self.projects[project_id]
            return found if found.alliance_id == alliance_id else None
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


class TestIdempotentCreates:
    """Issue 7, "no ghost writes": a retry of a create whose answer was lost returns the first."""

    def spec(self, tax_code: str = "00000000001") -> PartnerCreate:
        return PartnerCreate(kind=PartnerKind.COOPERATIVA, name="Coop. Totem", tax_code=tax_code, comune_istat="012042")

    def test_a_partner_retried_with_its_key_is_the_same_partner(
        self, fake: FakeRepository, repo: PartnersRepository, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(domain, "ensure_valid_partner", lambda tax_code, comune: None)
        first = usecases.register_partner(repo, self.spec(), NOW, "chiave-1", "manager.castellanza")
        again = usecases.register_partner(repo, self.spec(), NOW, "chiave-1", "manager.castellanza")
        assert again == first and fake.inserts == 1
        assert fake.partners[first.id].registered_by == "manager.castellanza"

    def test_without_a_key_a_second_registration_is_a_conflict(
        self, repo: PartnersRepository, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(domain, "ensure_valid_partner", lambda tax_code, comune: None)
        usecases.register_partner(repo, self.spec(), NOW)
        with pytest.raises(Conflict):
            usecases.register_partner(repo, self.spec(), NOW)

    def test_another_caller_with_the_same_key_makes_its_own(
        self, fake: FakeRepository, repo: PartnersRepository, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(domain, "ensure_valid_partner", lambda tax_code, comune: None)
        mine = usecases.register_partner(repo, self.spec("00000000001"), NOW, "k", "uno")
        theirs = usecases.register_partner(repo, self.spec("00000000002"), NOW, "k", "due")
        assert mine.id != theirs.id and fake.inserts == 2

    def test_a_concurrent_retry_that_inserted_first_is_the_answer(
        self, fake: FakeRepository, repo: PartnersRepository, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(domain, "ensure_valid_partner", lambda tax_code, comune: None)
        original_get = fake.get_partner
        calls = {"n": 0}

        def get_partner(partner_id: str) -> Partner | None:
            # The first look-up misses; meanwhile the other try inserts.
            calls["n"] += 1
            if calls["n"] == 1:
                first = usecases.register_partner(repo, self.spec(), NOW, "k", "uno")
                assert first.id == partner_id
                return None
            return original_get(partner_id)

        monkeypatch.setattr(fake, "get_partner", get_partner)
        answer = usecases.register_partner(repo, self.spec(), NOW, "k", "uno")
        assert answer.id in fake.partners and len(fake.partners) == 5

    def test_a_member_added_twice_with_one_key_is_one_change(
        self, fake: FakeRepository, repo: PartnersRepository
    ) -> None:
        first = usecases.add_member(repo, ALLIANCE_ID, MemberAdd(partner_id="marnate"), NOW, "k", "manager")
        again = usecases.add_member(repo, ALLIANCE_ID, MemberAdd(partner_id="marnate"), NOW, "k", "manager")
        assert again == first
        assert len(fake.events) == 1 and fake.alliance.version == 2
        # Without the key (or with another one) it is "already a member", as before.
        with pytest.raises(Conflict, match="già membro"):
            usecases.add_member(repo, ALLIANCE_ID, MemberAdd(partner_id="marnate"), NOW, "altra", "manager")

    def test_a_project_retried_with_its_key_is_the_same_project(
        self, fake: FakeRepository, repo: PartnersRepository
    ) -> None:
        spec = ProjectSpec.model_validate(CASTELLANZA.project)
        first = usecases.create_project(repo, ALLIANCE_ID, spec, NOW, "k", "manager")
        again = usecases.create_project(repo, ALLIANCE_ID, spec, NOW, "k", "manager")
        assert again == first and fake.inserts == 1 and len(fake.events) == 1
        other = usecases.create_project(repo, ALLIANCE_ID, spec, NOW, "k2", "manager")
        assert other.id != first.id


class TestReadingPartnersAndMembers:
    def test_partner_access_names_who_registered_it(self, fake: FakeRepository, repo: PartnersRepository) -> None:
        fake.partners["nuovo"] = dataclasses.replace(partner("nuovo"), registered_by="manager.castellanza")
        access = usecases.partner_access(repo, "nuovo")
        assert access.alliance_ids == [] and access.registered_by == "manager.castellanza"
        assert usecases.partner_access(repo, "capofila").alliance_ids == [ALLIANCE_ID]
        with pytest.raises(NotFound):
            usecases.partner_access(repo, "nessuno")

    def test_a_manager_lists_the_partners_it_registered(self, fake: FakeRepository, repo: PartnersRepository) -> None:
        fake.partners["nuovo"] = dataclasses.replace(partner("nuovo"), registered_by="manager.castellanza")
        query = PartnerQuery(alliance_ids=[ALLIANCE_ID], registered_by="manager.castellanza")
        assert {p.id for p in usecases.list_partners(repo, query).items} == {"capofila", "nuovo"}
        others = PartnerQuery(alliance_ids=[ALLIANCE_ID], registered_by="altro")
        assert {p.id for p in usecases.list_partners(repo, others).items} == {"capofila"}

    def test_member_list_leaves_withdrawn_out_and_matches_member_count(
        self, fake: FakeRepository, repo: PartnersRepository
    ) -> None:
        withdrawn = membership("fagnano").model_copy(update={"status": MembershipStatus.WITHDRAWN})
        pending = membership("marnate").model_copy(update={"status": MembershipStatus.PENDING})
        fake.alliance = dataclasses.replace(fake.alliance, members=[*fake.alliance.members, withdrawn, pending])
        listed = usecases.list_members(repo, ALLIANCE_ID, MemberQuery())
        assert [m.partner.id for m in listed.items] == ["capofila", "marnate"]
        assert listed.total == usecases.get_alliance(repo, ALLIANCE_ID).member_count == 2
        everyone = usecases.list_members(repo, ALLIANCE_ID, MemberQuery(include_withdrawn=True))
        assert everyone.total == 3
        gone = usecases.list_members(repo, ALLIANCE_ID, MemberQuery(status=MembershipStatus.WITHDRAWN))
        assert [m.partner.id for m in gone.items] == ["fagnano"]
