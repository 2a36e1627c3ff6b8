"""A small world for the enrolment use-case tests: an alliance, a published offering, families.

Requests arrive as ``EnrolmentRequested`` commands (what the gateway puts on the
partition queues) and are decided by ``admission.decide_requests``; their outcome is
read back with ``enrolments.get_enrolment``, as the gateway does.
"""

from datetime import date, timedelta
from itertools import count
from typing import Any

from conciliare.contracts.catalog import OfferingPublished, OfferingSnapshot, OfferingSuspended, OfferingUpdated
from conciliare.contracts.enrolment import (
    ChildCreate,
    EnrolmentCreate,
    EnrolmentOut,
    EnrolmentQuery,
    HouseholdCreate,
    Viewer,
)
from conciliare.contracts.enrolment_requests import EnrolmentRequested
from conciliare.contracts.identity import Role
from conciliare.contracts.partners import AllianceCreated
from conciliare.demo.families import ROSSI_HOUSEHOLD, synthetic_child
from services.enrolment import admission, enrolments, households, projections
from services.enrolment.domain import ROME
from services.enrolment.ports import Runtime
from tests.unit.enrolment.fakes import Clock, FakeRepository, Published, runtime

MARNATE = "012098"
CASTELLANZA = "012042"
CREMA = "019035"
ALLIANCE = "all-marnate"
TOTEM = "p-totem"
OFFERING = "off-post-scuola"

FAMILY = Viewer(subject="user:famiglia.rossi", role=Role.FAMILY)
OTHER_FAMILY = Viewer(subject="user:famiglia.verdi", role=Role.FAMILY)
ADMIN = Viewer(subject="user:regione.admin", role=Role.PLATFORM_ADMIN)
PROVIDER = Viewer(subject="user:totem.operatore", role=Role.PARTNER_OPERATOR, partner_id=TOTEM)
OTHER_OPERATOR = Viewer(subject="user:rembrandt", role=Role.PARTNER_OPERATOR, partner_id="p-rembrandt")
MANAGER = Viewer(subject="user:marnate.staff", role=Role.ALLIANCE_MANAGER, alliance_ids=[ALLIANCE])
OTHER_MANAGER = Viewer(subject="user:crema.staff", role=Role.ALLIANCE_MANAGER, alliance_ids=["all-crema"])


class World:
    """A fake repository with an alliance, a published offering of two seats and a family."""

    def __init__(self, repo: FakeRepository | None = None) -> None:
        self.repo = repo or FakeRepository()
        self.clock = Clock()
        self.published = Published()
        self.sleeps: list[float] = []
        self.today = self.clock.now.astimezone(ROME).date()
        self.catalog_version = 1
        self._numbers = count(1)
        projections.alliance_created(
            self.repo,
            self.rt(),
            AllianceCreated(
                alliance_id=ALLIANCE,
                code="MARNATE-WLB",
                name="Partenariato Work Life Balance - Marnate",
                comuni_istat=[MARNATE, CASTELLANZA],
                capofila_partner_id="p-comune-marnate",
            ),
        )
        self.publish_offering()

    def rt(self, **overrides: Any) -> Runtime:
        return runtime(self.clock, self.published, sleeps=self.sleeps, **overrides)

    # --- the catalog ---

    def snapshot(self, **overrides: Any) -> OfferingSnapshot:
        data: dict[str, Any] = {
            "offering_id": OFFERING,
            "alliance_id": ALLIANCE,
            "provider_partner_id": TOTEM,
            "status": "published",
            "type": "post_scuola_dsa_adhd_bes",
            "title": "Post scuola DSA alla primaria Manzoni",
            "comune_istat": MARNATE,
            "capacity": 2,
            "age_min_months": 72,
            "age_max_months": 143,
            "special_needs_supported": ["dsa", "adhd", "bes"],
            "attendance_modes": ["full", "hour_package"],
            "periods": [{"kind": "term_time", "start": self.today, "end": self.today + timedelta(days=90)}],
            "price_cents": 250,
            "price_unit": "hour",
            "version": self.catalog_version,
        }
        data.update(overrides)
        return OfferingSnapshot.model_validate(data)

    def publish_offering(self, **overrides: Any) -> None:
        projections.offering_changed(
            self.repo, self.rt(), OfferingPublished(alliance_id=ALLIANCE, offering=self.snapshot(**overrides))
        )

    def update_offering(
        self, event: type[OfferingUpdated | OfferingSuspended] = OfferingUpdated, **changes: Any
    ) -> None:
        self.catalog_version += 1
        offering = self.snapshot(**changes)
        projections.offering_changed(self.repo, self.rt(), event(alliance_id=ALLIANCE, offering=offering))

    # --- families ---

    def household(self, viewer: Viewer = FAMILY, payload: dict[str, Any] | None = None) -> str:
        spec = HouseholdCreate.model_validate(payload or ROSSI_HOUSEHOLD)
        return households.create_household(self.repo, viewer, spec, self.clock()).id

    def child(self, household_id: str, payload: dict[str, Any], viewer: Viewer = FAMILY) -> str:
        return households.add_child(self.repo, household_id, viewer, ChildCreate.model_validate(payload), self.rt()).id

    def children(self, count: int, viewer: Viewer = FAMILY) -> list[str]:
        household_id = self.household(viewer)
        born = date(self.today.year - 8, 1, 10)
        return [self.child(household_id, synthetic_child(i, born), viewer) for i in range(count)]

    # --- requests ---

    def body(
        self, child_id: str, start: date | None = None, days: int = 30, offering_id: str = OFFERING, **extra: Any
    ) -> EnrolmentCreate:
        first = start or self.today
        return EnrolmentCreate.model_validate(
            {
                "child_id": child_id,
                "offering_id": offering_id,
                "period": {"start": first.isoformat(), "end": (first + timedelta(days=days)).isoformat()},
                "attendance_mode": "full",
                **extra,
            }
        )

    def command(
        self, child_id: str, viewer: Viewer = FAMILY, *, request_id: str | None = None, **body: Any
    ) -> EnrolmentRequested:
        """A request as the gateway accepted it (a moment after the previous one)."""
        self.clock.advance(0.001)
        number = next(self._numbers)
        return EnrolmentRequested(
            request_id=request_id or f"req-{number:04d}",
            protocol=f"ISC-20270301-090000-{number:08X}",
            accepted_at=self.clock(),
            viewer=viewer,
            request=self.body(child_id, **body),
        )

    def decide(self, *commands: EnrolmentRequested, rt: Runtime | None = None) -> int:
        """One partition batch, in the given order; how many requests were new."""
        return admission.decide_requests(self.repo, rt or self.rt(), list(commands))

    def enrol(self, child_id: str, viewer: Viewer = FAMILY, **body: Any) -> EnrolmentOut:
        """Request, decide and read the outcome, as the family would."""
        command = self.command(child_id, viewer, **body)
        self.decide(command)
        return self.get(command.request_id, viewer)

    # --- reads and cancellations ---

    def get(self, enrolment_id: str, viewer: Viewer = FAMILY) -> EnrolmentOut:
        return enrolments.get_enrolment(self.repo, enrolment_id, viewer)

    def cancel(self, enrolment_id: str, viewer: Viewer = FAMILY, reason: str | None = None) -> EnrolmentOut:
        return enrolments.cancel_enrolment(self.repo, enrolment_id, viewer, reason, self.rt())

    def listed(self, viewer: Viewer, **query: Any) -> list[str]:
        page = enrolments.list_enrolments(self.repo, viewer, EnrolmentQuery.model_validate(query))
        return [e.id for e in page.items]

    def events(self, event_type: str) -> list[dict[str, Any]]:
        return [payload for t, payload in self.published.events if t == event_type]


def codes(out: EnrolmentOut) -> list[str]:
    return [r.code for r in out.refusal_reasons]
