"""Interface tests of the catalog service: real containers on RabbitMQ and a MongoDB-wire server.

A real partners service runs beside the catalog (each with its own database), and
the alliance and its members are created through its RPC, so the catalog's
membership and territory checks ask a live service. No enrolment service runs:
that is how "the enrolment service is unavailable" is exercised.
"""

from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import pytest
from nameko.events import event_handler
from nameko.exceptions import RemoteError
from nameko.rpc import rpc
from nameko.standalone.rpc import ServiceRpcClient
from nameko.testing.services import entrypoint_waiter
from pymongo import MongoClient

from conciliare.demo.data import AMBITO_CASTELLANZA, PARTNER_BY_KEY
from services.catalog.service import CatalogService
from services.partners.service import PartnersService

pytestmark = pytest.mark.integration

MARNATE = "012098"
CASTELLANZA = "012042"
ARSAGO_SEPRIO = "012005"  # Ambito di Somma Lombardo: outside this alliance

# Calendars of the next school year, whatever today is: publishing needs open days ahead.
YEAR = date.today().year + 1
# Term time stops for the holidays, as school calendars do.
TERM = [
    {"kind": "term_time", "start": f"{YEAR - 1}-09-14", "end": f"{YEAR - 1}-12-22"},
    {"kind": "term_time", "start": f"{YEAR}-01-07", "end": f"{YEAR}-03-24"},
    {"kind": "term_time", "start": f"{YEAR}-03-31", "end": f"{YEAR}-06-08"},
]
CHRISTMAS = {"kind": "christmas", "start": f"{YEAR - 1}-12-23", "end": f"{YEAR}-01-06"}
EASTER = {"kind": "easter", "start": f"{YEAR}-03-25", "end": f"{YEAR}-03-30"}
EARLY_SEPTEMBER = {"kind": "early_september", "start": f"{YEAR}-09-01", "end": f"{YEAR}-09-10"}
SUMMER = {"kind": "summer", "start": f"{YEAR}-06-14", "end": f"{YEAR}-07-30"}
EASTER_BREAK = (date(YEAR, 3, 25), date(YEAR, 3, 30))
# Seven years and a half at the Easter break.
SEVEN_YEAR_OLD = date(YEAR - 8, 9, 20)


Handler = Callable[[Any, dict[str, Any]], None]


def on_catalog_event(event_type: str) -> Callable[[Handler], Handler]:
    """nameko's ``event_handler`` for a catalog event, typed for mypy."""
    decorator: Callable[[Handler], Handler] = event_handler("catalog", event_type)
    return decorator


class CatalogEventRecorder:
    """A consumer of the catalog's events, as the enrolment service is."""

    name = "catalog_event_recorder"
    received: list[tuple[str, dict[str, Any]]] = []

    @on_catalog_event("offering.published")
    def on_published(self, payload: dict[str, Any]) -> None:
        CatalogEventRecorder.received.append(("offering.published", payload))

    @on_catalog_event("offering.updated")
    def on_updated(self, payload: dict[str, Any]) -> None:
        CatalogEventRecorder.received.append(("offering.updated", payload))

    @on_catalog_event("offering.suspended")
    def on_suspended(self, payload: dict[str, Any]) -> None:
        CatalogEventRecorder.received.append(("offering.suspended", payload))

    @on_catalog_event("offering.archived")
    def on_archived(self, payload: dict[str, Any]) -> None:
        CatalogEventRecorder.received.append(("offering.archived", payload))


def spec(**overrides: Any) -> dict[str, Any]:
    """A complete, publishable post scuola in Marnate (seed 000)."""
    data: dict[str, Any] = {
        "type": "post_scuola",
        "title": "Post scuola alla primaria Manzoni",
        "description": "Accoglienza dopo le lezioni con merenda, gioco libero e compiti.",
        "comune_istat": MARNATE,
        "address": "Via Libertà 7, Marnate (VA)",
        "age_range": {"min_months": 72, "max_months": 143},
        "school_levels": ["primaria"],
        "calendar": {"periods": TERM},
        "weekly_slots": [{"weekday": d, "start": "16:00", "end": "18:00"} for d in range(1, 6)],
        "capacity": 20,
        "price": {"amount_cents": 250, "unit": "hour"},
        "attendance_modes": ["full", "chosen_days", "hour_package"],
    }
    data.update(overrides)
    return data


@pytest.fixture
def partners_database(mongo_client: MongoClient[dict[str, object]], fresh_database: str) -> Iterator[str]:
    name = f"{fresh_database}_partners"
    yield name
    mongo_client.drop_database(name)


@pytest.fixture
def services(container_factory: Any, rabbit_uri: str, fresh_database: str, partners_database: str) -> dict[str, Any]:
    # Each container reads its database name when it starts: start one at a time.
    containers = {
        "partners": container_factory(PartnersService, {"AMQP_URI": rabbit_uri, "MONGO_DATABASE": partners_database}),
        "catalog": container_factory(CatalogService, {"AMQP_URI": rabbit_uri, "MONGO_DATABASE": fresh_database}),
    }
    for container in containers.values():
        container.start()
    return containers


@pytest.fixture
def recorder(container_factory: Any, rabbit_uri: str, services: dict[str, Any]) -> Any:
    CatalogEventRecorder.received = []
    container = container_factory(CatalogEventRecorder, {"AMQP_URI": rabbit_uri})
    container.start()
    return container


@pytest.fixture
def partners(services: dict[str, Any]) -> Iterator[Any]:
    with ServiceRpcClient("partners") as client:
        yield client


@pytest.fixture
def catalog(services: dict[str, Any]) -> Iterator[Any]:
    with ServiceRpcClient("catalog") as client:
        yield client


@pytest.fixture
def alliance(partners: Any) -> dict[str, str]:
    """Marnate's partnership (seed 000): Totem formalized, Rembrandt still pending."""
    ids: dict[str, str] = {}
    for key in ("comune_marnate", "coop_totem", "coop_rembrandt", "coop_il_seme"):
        demo = PARTNER_BY_KEY[key]
        payload = {"kind": demo.kind, "name": demo.name, "tax_code": demo.tax_code, "comune_istat": demo.comune_istat}
        ids[key] = partners.register_partner(payload=payload)["id"]
    created = partners.create_alliance(
        payload={
            "code": "MARNATE-WLB",
            "name": "Partenariato Work Life Balance - Marnate",
            "ambiti": [{"name": "Ambito di Castellanza", "comuni_istat": AMBITO_CASTELLANZA}],
            "capofila_partner_id": ids["comune_marnate"],
        }
    )
    alliance_id = created["id"]
    partners.add_member(alliance_id=alliance_id, payload={"partner_id": ids["coop_totem"], "status": "formalized"})
    partners.add_member(alliance_id=alliance_id, payload={"partner_id": ids["coop_rembrandt"]})
    return {"id": alliance_id, **ids}


def refused(call: Any, **kwargs: Any) -> RemoteError:
    with pytest.raises(RemoteError) as raised:
        call(**kwargs)
    return raised.value


def waiting_for(recorder: Any, handler: str, offering_id: str) -> Any:
    def is_about(worker_ctx: Any, result: Any, exc_info: Any) -> bool:
        return bool(worker_ctx.args[0]["offering"]["offering_id"] == offering_id)

    return entrypoint_waiter(recorder, handler, timeout=10, callback=is_about)


def events_of(offering_id: str) -> list[tuple[str, dict[str, Any]]]:
    """Events about one offering, each once: delivery is at-least-once, consumers dedupe by id."""
    unique = {p["event_id"]: (kind, p) for kind, p in CatalogEventRecorder.received}
    return [(kind, p) for kind, p in unique.values() if p["offering"]["offering_id"] == offering_id]


# --- creation ----------------------------------------------------------------------


def test_ping(catalog: Any) -> None:
    assert catalog.ping() == "pong"


def test_create_draft_of_a_formalized_member(catalog: Any, alliance: dict[str, str]) -> None:
    created = catalog.create_offering(
        alliance_id=alliance["id"], provider_partner_id=alliance["coop_totem"], payload=spec()
    )
    assert created["status"] == "draft" and created["version"] == 1
    assert created["published_at"] is None
    assert created["spec"]["calendar"]["periods"][0] == TERM[0]  # dates stored as ISO strings
    assert created["spec"]["weekly_slots"][0] == {"weekday": 1, "start": "16:00:00", "end": "18:00:00"}
    assert catalog.get_offering(offering_id=created["id"]) == created


def test_create_refusals_store_nothing(catalog: Any, alliance: dict[str, str]) -> None:
    alliance_id = alliance["id"]
    cases: list[tuple[dict[str, Any], str, str]] = [
        # Rembrandt's adhesion is still pending.
        ({"provider_partner_id": alliance["coop_rembrandt"], "payload": spec()}, "ValidationFailed", "formalizzata"),
        # Il Seme is registered but not a member at all.
        ({"provider_partner_id": alliance["coop_il_seme"], "payload": spec()}, "ValidationFailed", "non è membro"),
        # Arsago Seprio is not one of the alliance's Comuni.
        (
            {"provider_partner_id": alliance["coop_totem"], "payload": spec(comune_istat=ARSAGO_SEPRIO)},
            "ValidationFailed",
            "comune_istat",
        ),
        # Age range upside down, unknown type: field errors from the domain.
        (
            {
                "provider_partner_id": alliance["coop_totem"],
                "payload": spec(age_range={"min_months": 100, "max_months": 80}, type="doposcuola"),
            },
            "ValidationFailed",
            "age_range.max_months",
        ),
    ]
    for kwargs, exc_type, hint in cases:
        error = refused(catalog.create_offering, alliance_id=alliance_id, **kwargs)
        assert error.exc_type == exc_type
        assert hint in error.value, error.value
    unknown = refused(
        catalog.create_offering, alliance_id="nessuna", provider_partner_id=alliance["coop_totem"], payload=spec()
    )
    assert unknown.exc_type == "ValidationFailed" and "alliance_id" in unknown.value
    for provider in ("coop_totem", "coop_rembrandt", "coop_il_seme"):
        page = catalog.list_offerings_of_provider(provider_partner_id=alliance[provider], query={})
        assert page["total"] == 0


def test_get_unknown_offering_is_not_found(catalog: Any) -> None:
    assert refused(catalog.get_offering, offering_id="nope").exc_type == "NotFound"


# --- status machine and events -----------------------------------------------------------


def test_lifecycle_emits_snapshots(
    catalog: Any,
    alliance: dict[str, str],
    recorder: Any,
    mongo_client: MongoClient[dict[str, object]],
    fresh_database: str,
) -> None:
    draft = catalog.create_offering(
        alliance_id=alliance["id"],
        provider_partner_id=alliance["coop_totem"],
        payload=spec(calendar={"periods": [*TERM, EASTER], "closures": [f"{YEAR}-03-29"]}),
    )
    offering_id = draft["id"]

    with waiting_for(recorder, "on_published", offering_id):
        published = catalog.change_status(offering_id=offering_id, target="publish")
    assert published["status"] == "published" and published["version"] == 2
    assert published["published_at"] is not None
    [(kind, event)] = events_of(offering_id)
    assert kind == "offering.published" and event["alliance_id"] == alliance["id"]
    snapshot = event["offering"]
    assert snapshot == {
        "offering_id": offering_id,
        "alliance_id": alliance["id"],
        "provider_partner_id": alliance["coop_totem"],
        "status": "published",
        "type": "post_scuola",
        "title": "Post scuola alla primaria Manzoni",
        "comune_istat": MARNATE,
        "capacity": 20,
        "age_min_months": 72,
        "age_max_months": 143,
        "special_needs_supported": [],
        "attendance_modes": ["full", "chosen_days", "hour_package"],
        "periods": sorted([*TERM, EASTER], key=lambda p: p["start"]),
        "closures": [f"{YEAR}-03-29"],
        "weekdays": [1, 2, 3, 4, 5],
        "price_cents": 250,
        "price_unit": "hour",
        "version": 2,
    }

    # Growing capacity needs no enrolment count; consumers hear of it.
    with waiting_for(recorder, "on_updated", offering_id):
        updated = catalog.update_offering(offering_id=offering_id, version=2, payload=spec(capacity=25))
    assert updated["version"] == 3 and updated["spec"]["capacity"] == 25
    assert events_of(offering_id)[-1][1]["offering"]["capacity"] == 25
    assert events_of(offering_id)[-1][1]["offering"]["version"] == 3

    with waiting_for(recorder, "on_suspended", offering_id):
        suspended = catalog.change_status(offering_id=offering_id, target="suspend")
    assert suspended["status"] == "suspended"

    # A suspended offering comes back with "resume", not "publish".
    error = refused(catalog.change_status, offering_id=offering_id, target="publish")
    assert error.exc_type == "Conflict" and "riprendi" in error.value

    with waiting_for(recorder, "on_published", offering_id):
        resumed = catalog.change_status(offering_id=offering_id, target="resume")
    assert resumed["status"] == "published" and resumed["published_at"] == published["published_at"]

    with waiting_for(recorder, "on_archived", offering_id):
        archived = catalog.change_status(offering_id=offering_id, target="archive")
    assert archived["status"] == "archived" and archived["version"] == 6

    kinds = [kind for kind, _ in events_of(offering_id)]
    assert kinds == [
        "offering.published",
        "offering.updated",
        "offering.suspended",
        "offering.published",
        "offering.archived",
    ]
    assert [p["offering"]["version"] for _, p in events_of(offering_id)] == [2, 3, 4, 5, 6]
    # Published events leave the outbox.
    stored = mongo_client[fresh_database]["offerings"].find_one({"_id": offering_id})
    assert stored is not None and stored["_outbox"] == [] and stored["_outbox_pending"] is False

    # Archived is final and read-only.
    assert refused(catalog.change_status, offering_id=offering_id, target="resume").exc_type == "Conflict"
    error = refused(catalog.update_offering, offering_id=offering_id, version=6, payload=spec())
    assert error.exc_type == "Conflict" and "archiviata" in error.value


def test_incomplete_draft_cannot_be_published(catalog: Any, alliance: dict[str, str]) -> None:
    draft = catalog.create_offering(
        alliance_id=alliance["id"],
        provider_partner_id=alliance["coop_totem"],
        payload=spec(description="", address=None, calendar={"periods": []}),
    )
    error = refused(catalog.change_status, offering_id=draft["id"], target="publish")
    assert error.exc_type == "ValidationFailed"
    for field in ("calendar", "description", "address"):
        assert field in error.value
    assert catalog.get_offering(offering_id=draft["id"])["status"] == "draft"
    assert refused(catalog.change_status, offering_id=draft["id"], target="suspend").exc_type == "Conflict"
    assert refused(catalog.change_status, offering_id=draft["id"], target="resume").exc_type == "Conflict"
    assert refused(catalog.change_status, offering_id=draft["id"], target="delete").exc_type == "ValidationFailed"


def test_drafts_emit_nothing(catalog: Any, alliance: dict[str, str], recorder: Any) -> None:
    draft = catalog.create_offering(
        alliance_id=alliance["id"], provider_partner_id=alliance["coop_totem"], payload=spec()
    )
    catalog.update_offering(offering_id=draft["id"], version=1, payload=spec(capacity=5))
    catalog.change_status(offering_id=draft["id"], target="archive")
    # A published offering afterwards proves the recorder was listening all along.
    other = catalog.create_offering(
        alliance_id=alliance["id"], provider_partner_id=alliance["coop_totem"], payload=spec()
    )
    with waiting_for(recorder, "on_published", other["id"]):
        catalog.change_status(offering_id=other["id"], target="publish")
    assert events_of(draft["id"]) == []


# --- concurrency and capacity ---------------------------------------------------------


def test_stale_version_is_a_conflict(catalog: Any, alliance: dict[str, str]) -> None:
    draft = catalog.create_offering(
        alliance_id=alliance["id"], provider_partner_id=alliance["coop_totem"], payload=spec()
    )
    catalog.update_offering(offering_id=draft["id"], version=1, payload=spec(title="Post scuola Manzoni"))
    error = refused(catalog.update_offering, offering_id=draft["id"], version=1, payload=spec(title="Altro titolo"))
    assert error.exc_type == "Conflict" and "version" in error.value
    current = catalog.get_offering(offering_id=draft["id"])
    assert current["version"] == 2 and current["spec"]["title"] == "Post scuola Manzoni"


def test_lowering_capacity_needs_the_enrolment_service(catalog: Any, alliance: dict[str, str]) -> None:
    draft = catalog.create_offering(
        alliance_id=alliance["id"], provider_partner_id=alliance["coop_totem"], payload=spec()
    )
    # A draft never had enrolments: shrinking it asks nobody.
    shrunk = catalog.update_offering(offering_id=draft["id"], version=1, payload=spec(capacity=15))
    assert shrunk["spec"]["capacity"] == 15
    catalog.change_status(offering_id=draft["id"], target="publish")

    # Published: confirmed seats must be counted, and no enrolment service runs here:
    # a dependency away is "try again later" (503), not a conflict with what is stored.
    error = refused(catalog.update_offering, offering_id=draft["id"], version=3, payload=spec(capacity=10))
    assert error.exc_type == "Unavailable" and "servizio iscrizioni" in error.value
    assert catalog.get_offering(offering_id=draft["id"])["spec"]["capacity"] == 15

    grown = catalog.update_offering(offering_id=draft["id"], version=3, payload=spec(capacity=30))
    assert grown["spec"]["capacity"] == 30 and grown["version"] == 4


SeatCountsMethod = Callable[[Any, str], dict[str, int]]
typed_rpc: Callable[[SeatCountsMethod], SeatCountsMethod] = rpc


class EnrolmentStandIn:
    """Answers ``enrolment.seat_counts`` as the enrolment service's contract says."""

    name = "enrolment"
    confirmed = 12

    @typed_rpc
    def seat_counts(self, offering_id: str) -> dict[str, int]:
        return {"confirmed": EnrolmentStandIn.confirmed, "waitlisted": 3}


def test_capacity_never_below_confirmed_seats(
    catalog: Any, alliance: dict[str, str], container_factory: Any, rabbit_uri: str
) -> None:
    container_factory(EnrolmentStandIn, {"AMQP_URI": rabbit_uri}).start()
    offering = catalog.create_offering(
        alliance_id=alliance["id"], provider_partner_id=alliance["coop_totem"], payload=spec()
    )
    catalog.change_status(offering_id=offering["id"], target="publish")
    error = refused(catalog.update_offering, offering_id=offering["id"], version=2, payload=spec(capacity=10))
    assert error.exc_type == "Conflict" and "posti già confermati (12)" in error.value
    exact = catalog.update_offering(offering_id=offering["id"], version=2, payload=spec(capacity=12))
    assert exact["spec"]["capacity"] == 12


def test_partners_unavailable_is_unavailable(container_factory: Any, rabbit_uri: str, fresh_database: str) -> None:
    """No partners service at all (nameko's UnknownService): 'try again later', nothing stored."""
    container_factory(CatalogService, {"AMQP_URI": rabbit_uri, "MONGO_DATABASE": fresh_database}).start()
    with ServiceRpcClient("catalog") as catalog:
        error = refused(catalog.create_offering, alliance_id="a", provider_partner_id="p", payload=spec())
        assert error.exc_type == "Unavailable" and "servizio partner non risponde" in error.value
        assert catalog.search_offerings(criteria={"alliance_id": "a", "statuses": ["draft"]})["total"] == 0


def test_partners_gone_after_drafting_blocks_publishing_only(
    catalog: Any, alliance: dict[str, str], services: dict[str, Any]
) -> None:
    """Partners stops after the draft was written (its queue stays, nobody answers: the
    catalog's deadline expires): publishing, which asks it, is Unavailable; reading and
    editing the draft, which do not, still work."""
    draft = catalog.create_offering(
        alliance_id=alliance["id"], provider_partner_id=alliance["coop_totem"], payload=spec()
    )
    services["partners"].stop()
    error = refused(catalog.change_status, offering_id=draft["id"], target="publish")
    assert error.exc_type == "Unavailable" and "servizio partner non risponde" in error.value
    current = catalog.get_offering(offering_id=draft["id"])
    assert current["status"] == "draft" and current["version"] == 1
    edited = catalog.update_offering(offering_id=draft["id"], version=1, payload=spec(title="Post scuola Manzoni"))
    assert edited["version"] == 2


def test_concurrent_edits_of_one_version_have_one_winner(catalog: Any, alliance: dict[str, str]) -> None:
    """Eight editors who all read version 1 send their change at once: exactly one is stored."""
    import eventlet

    draft = catalog.create_offering(
        alliance_id=alliance["id"], provider_partner_id=alliance["coop_totem"], payload=spec()
    )

    def edit(n: int) -> str:
        with ServiceRpcClient("catalog") as own_client:
            try:
                own_client.update_offering(offering_id=draft["id"], version=1, payload=spec(title=f"Titolo {n}"))
            except RemoteError as exc:
                return str(exc.exc_type)
            return "ok"

    outcomes = list(eventlet.GreenPool(8).imap(edit, range(8)))
    assert sorted(outcomes) == ["Conflict"] * 7 + ["ok"]
    current = catalog.get_offering(offering_id=draft["id"])
    assert current["version"] == 2 and current["spec"]["title"] == f"Titolo {outcomes.index('ok')}"


def test_published_offering_must_stay_publishable_and_in_territory(catalog: Any, alliance: dict[str, str]) -> None:
    offering = catalog.create_offering(
        alliance_id=alliance["id"], provider_partner_id=alliance["coop_totem"], payload=spec()
    )
    catalog.change_status(offering_id=offering["id"], target="publish")
    error = refused(catalog.update_offering, offering_id=offering["id"], version=2, payload=spec(description=""))
    assert error.exc_type == "ValidationFailed" and "description" in error.value
    error = refused(
        catalog.update_offering, offering_id=offering["id"], version=2, payload=spec(comune_istat=ARSAGO_SEPRIO)
    )
    assert error.exc_type == "ValidationFailed" and "comune_istat" in error.value
    moved = catalog.update_offering(offering_id=offering["id"], version=2, payload=spec(comune_istat=CASTELLANZA))
    assert moved["spec"]["comune_istat"] == CASTELLANZA


# --- search --------------------------------------------------------------------------------


@pytest.fixture
def marnate_catalog(catalog: Any, alliance: dict[str, str]) -> dict[str, str]:
    """A small Marnate catalog: what a family would search through."""
    offerings = {
        "dsa_post_scuola": spec(
            type="post_scuola_dsa_adhd_bes",
            title="Post scuola DSA/ADHD/BES",
            description="Post scuola con educatori dedicati ad alunni con DSA, ADHD e BES.",
            special_needs_supported=["dsa", "adhd", "bes"],
            calendar={"periods": [*TERM, EASTER]},
            capacity=12,
            price={"amount_cents": 350, "unit": "hour"},
        ),
        "holidays": spec(
            type="attivita_vacanze_scolastiche",
            title="Vacanze a colori",
            description="Attività ludico-educative nelle vacanze di Natale e Pasqua e a inizio settembre, "
            "con supporto per DSA e BES e un angolo compiti.",
            special_needs_supported=["dsa", "bes"],
            calendar={"periods": [CHRISTMAS, EASTER, EARLY_SEPTEMBER]},
            weekly_slots=[],
            price={"amount_cents": 1800, "unit": "day"},
            attendance_modes=["full", "chosen_days"],
        ),
        "generic_post_scuola": spec(),
        "summer_camp": spec(
            type="centro_estivo",
            title="Centro estivo con educatori di sostegno",
            description="Centro estivo ricreativo con educatori di sostegno per bambini con diagnosi funzionale.",
            age_range={"min_months": 36, "max_months": 143},
            school_levels=["infanzia", "primaria"],
            special_needs_supported=["disabilita"],
            calendar={"periods": [SUMMER]},
            weekly_slots=[],
            price={"amount_cents": 9000, "unit": "week"},
            attendance_modes=["full"],
        ),
        "homework": spec(
            type="spazio_compiti",
            title="Gruppo di supporto compiti",
            description="Un pomeriggio insieme per fare i compiti.",
            special_needs_supported=["dsa"],
            calendar={"periods": TERM},
            price={"amount_cents": 0, "unit": "flat"},
        ),
        "pre_teens": spec(
            type="spazio_preadolescenti",
            title="Spazio pre adolescenti",
            description="Spazio aperto per ragazzi e ragazze della secondaria, con aiuto nei compiti.",
            age_range={"min_months": 132, "max_months": 179},
            school_levels=["secondaria_primo_grado"],
            calendar={"periods": [*TERM, EASTER]},
        ),
    }
    ids: dict[str, str] = {}
    for key, payload in offerings.items():
        created = catalog.create_offering(
            alliance_id=alliance["id"], provider_partner_id=alliance["coop_totem"], payload=payload
        )
        catalog.change_status(offering_id=created["id"], target="publish")
        ids[key] = created["id"]
    # Open at Easter, but still a draft: families never see it.
    draft = catalog.create_offering(
        alliance_id=alliance["id"],
        provider_partner_id=alliance["coop_totem"],
        payload=spec(title="Pasqua in oratorio", special_needs_supported=["dsa"], calendar={"periods": [EASTER]}),
    )
    ids["draft"] = draft["id"]
    return ids


def search(catalog: Any, alliance: dict[str, str], **criteria: Any) -> dict[str, Any]:
    return dict(catalog.search_offerings(criteria={"alliance_id": alliance["id"], **criteria}))


def found(page: dict[str, Any], ids: dict[str, str]) -> list[str]:
    names = {v: k for k, v in ids.items()}
    return [names[item["id"]] for item in page["items"]]


def test_easter_break_for_a_seven_year_old_with_dsa(
    catalog: Any, alliance: dict[str, str], marnate_catalog: dict[str, str]
) -> None:
    page = search(
        catalog,
        alliance,
        comune_istat=MARNATE,
        child_birth_date=SEVEN_YEAR_OLD.isoformat(),
        on_date=EASTER_BREAK[0].isoformat(),
        date_from=EASTER_BREAK[0].isoformat(),
        date_to=EASTER_BREAK[1].isoformat(),
        needs=["dsa"],
    )
    # Both are open at Easter and take DSA; both start on the first day of the break,
    # so the title decides. Term-time services (the homework group) pause at Easter.
    assert found(page, marnate_catalog) == ["dsa_post_scuola", "holidays"]
    assert page["total"] == 2

    anyone = search(catalog, alliance, date_from=EASTER_BREAK[0].isoformat(), date_to=EASTER_BREAK[1].isoformat())
    assert set(found(anyone, marnate_catalog)) == {"dsa_post_scuola", "holidays", "pre_teens"}
    # The pre-teen space is open too, but not for a 7-year-old.
    seven = search(
        catalog,
        alliance,
        child_age_months=90,
        date_from=EASTER_BREAK[0].isoformat(),
        date_to=EASTER_BREAK[1].isoformat(),
    )
    assert set(found(seven, marnate_catalog)) == {"dsa_post_scuola", "holidays"}


def test_filters_by_type_need_age_and_period(
    catalog: Any, alliance: dict[str, str], marnate_catalog: dict[str, str]
) -> None:
    by_type = search(catalog, alliance, types=["centro_estivo", "spazio_compiti"])
    assert set(found(by_type, marnate_catalog)) == {"summer_camp", "homework"}
    disability = search(catalog, alliance, needs=["disabilita"], child_age_months=48)
    assert found(disability, marnate_catalog) == ["summer_camp"]
    summer = search(catalog, alliance, date_from=f"{YEAR}-07-01", date_to=f"{YEAR}-07-10")
    assert found(summer, marnate_catalog) == ["summer_camp"]
    teen = search(catalog, alliance, child_age_months=150)
    assert found(teen, marnate_catalog) == ["pre_teens"]
    castellanza = search(catalog, alliance, comune_istat=CASTELLANZA)
    assert castellanza["total"] == 0
    elsewhere = dict(catalog.search_offerings(criteria={"alliance_id": "altra-alleanza"}))
    assert elsewhere["total"] == 0


def test_text_relevance_orders_results(catalog: Any, alliance: dict[str, str], marnate_catalog: dict[str, str]) -> None:
    page = search(catalog, alliance, text="compiti")
    names = found(page, marnate_catalog)
    # "compiti" is a title word of the homework group only; the others mention it
    # in the description (and the generic post scuola says "compiti" too).
    assert names[0] == "homework"
    assert set(names) == {"homework", "holidays", "pre_teens", "generic_post_scuola"}
    accents = search(catalog, alliance, text="ATTIVITÀ ludico")
    assert found(accents, marnate_catalog) == ["holidays"]
    prefix = search(catalog, alliance, text="educat sosteg")
    assert found(prefix, marnate_catalog) == ["summer_camp"]


def test_pagination_and_statuses(catalog: Any, alliance: dict[str, str], marnate_catalog: dict[str, str]) -> None:
    everything = search(catalog, alliance, limit=50)
    assert everything["total"] == 6
    first = search(catalog, alliance, limit=4, offset=0)
    second = search(catalog, alliance, limit=4, offset=4)
    assert first["total"] == second["total"] == 6
    assert len(first["items"]) == 4 and len(second["items"]) == 2
    paged = [i["id"] for i in first["items"]] + [i["id"] for i in second["items"]]
    assert paged == [i["id"] for i in everything["items"]]

    drafts = search(catalog, alliance, statuses=["draft"])
    assert found(drafts, marnate_catalog) == ["draft"]
    # Unpublished offerings restricted to another provider: the draft disappears.
    restricted = search(
        catalog, alliance, statuses=["draft", "published"], unpublished_only_of=alliance["coop_rembrandt"]
    )
    assert restricted["total"] == 6 and "draft" not in found(restricted, marnate_catalog)
    mine = catalog.list_offerings_of_provider(provider_partner_id=alliance["coop_totem"], query={"statuses": ["draft"]})
    assert [i["id"] for i in mine["items"]] == [marnate_catalog["draft"]]


def test_invalid_criteria_are_field_errors(catalog: Any, alliance: dict[str, str]) -> None:
    error = refused(
        catalog.search_offerings,
        criteria={"alliance_id": alliance["id"], "child_birth_date": "2019-09-20"},
    )
    assert error.exc_type == "ValidationFailed" and "on_date" in error.value
    error = refused(
        catalog.search_offerings,
        criteria={"alliance_id": alliance["id"], "date_from": f"{YEAR}-04-01", "date_to": f"{YEAR}-03-01"},
    )
    assert error.exc_type == "ValidationFailed" and "date_to" in error.value
    error = refused(catalog.search_offerings, criteria={"alliance_id": alliance["id"], "statuses": ["cancellata"]})
    assert error.exc_type == "ValidationFailed" and "statuses" in error.value


# --- issue 7: idempotent creates, what a draft lacks, search across alliances -----------


def test_a_create_retried_with_its_key_is_the_first_offering(
    catalog: Any, alliance: dict[str, str], mongo_client: MongoClient[dict[str, object]], fresh_database: str
) -> None:
    arguments = {
        "alliance_id": alliance["id"],
        "provider_partner_id": alliance["coop_totem"],
        "payload": spec(),
        "request_key": "chiave-1",
        "requested_by": "user:totem",
    }
    first = catalog.create_offering(**arguments)
    assert catalog.create_offering(**arguments) == first
    assert mongo_client[fresh_database].offerings.count_documents({}) == 1
    other_caller = catalog.create_offering(**{**arguments, "requested_by": "user:altro"})
    assert other_caller["id"] != first["id"]


def test_a_draft_tells_what_it_lacks_for_publication(catalog: Any, alliance: dict[str, str]) -> None:
    draft = catalog.create_offering(
        alliance_id=alliance["id"],
        provider_partner_id=alliance["coop_totem"],
        payload=spec(description="", address=None),
    )
    assert [gap["field"] for gap in draft["missing_for_publication"]] == ["description", "address"]
    assert all(gap["message"].startswith("manca") for gap in draft["missing_for_publication"])
    fixed = catalog.update_offering(offering_id=draft["id"], version=1, payload=spec())
    assert fixed["missing_for_publication"] == []
    published = catalog.change_status(offering_id=draft["id"], target="publish")
    assert published["missing_for_publication"] == []


def test_search_without_an_alliance_spans_every_alliance(catalog: Any, alliance: dict[str, str]) -> None:
    created = catalog.create_offering(
        alliance_id=alliance["id"], provider_partner_id=alliance["coop_totem"], payload=spec()
    )
    catalog.change_status(offering_id=created["id"], target="publish")
    everywhere = catalog.search_offerings(criteria={"comune_istat": MARNATE})
    assert [item["id"] for item in everywhere["items"]] == [created["id"]]
    assert catalog.search_offerings(criteria={"alliance_ids": [alliance["id"]]})["total"] == 1
    assert catalog.search_offerings(criteria={"alliance_ids": ["altra-alleanza"]})["total"] == 0
