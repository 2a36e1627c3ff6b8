"""Interface tests of the partners service: real containers on RabbitMQ and a MongoDB-wire server."""

from collections.abc import Iterator
from typing import Any

import pytest
from nameko.events import event_handler
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ServiceRpcClient
from nameko.testing.services import entrypoint_waiter

from conciliare.demo.data import CASTELLANZA, PARTNER_BY_KEY, demo_tax_code
from services.partners.service import PartnersService

pytestmark = pytest.mark.integration


class EventRecorder:
    """A consumer of the partners service's events, as another service would be."""

    name = "event_recorder"
    received: list[tuple[str, dict[str, Any]]] = []

    @event_handler("partners", "alliance.created")
    def on_alliance_created(self, payload: dict[str, Any]) -> None:
        EventRecorder.received.append(("alliance.created", payload))

    @event_handler("partners", "membership.changed")
    def on_membership_changed(self, payload: dict[str, Any]) -> None:
        EventRecorder.received.append(("membership.changed", payload))

    @event_handler("partners", "project.created")
    def on_project_created(self, payload: dict[str, Any]) -> None:
        EventRecorder.received.append(("project.created", payload))


@pytest.fixture
def partners(container_factory: Any, config: dict[str, Any]) -> Iterator[Any]:
    container = container_factory(PartnersService, config)
    container.start()
    with ServiceRpcClient("partners") as client:
        yield client


@pytest.fixture
def recorder(container_factory: Any, config: dict[str, Any]) -> Any:
    EventRecorder.received = []
    container = container_factory(EventRecorder, config)
    container.start()
    return container


def register(partners: Any, key: str) -> dict[str, Any]:
    demo = PARTNER_BY_KEY[key]
    return dict(
        partners.register_partner(
            payload={"kind": demo.kind, "name": demo.name, "tax_code": demo.tax_code, "comune_istat": demo.comune_istat}
        )
    )


def error_type(exc: RemoteError) -> str:
    return str(exc.exc_type)


def test_register_partner_and_refuse_duplicate_tax_code(partners: Any) -> None:
    created = register(partners, "coop_totem")
    assert created["comune_name"] == "Castellanza"
    with pytest.raises(RemoteError) as raised:
        register(partners, "coop_totem")
    assert error_type(raised.value) == "Conflict"
    page = partners.list_partners(query={"tax_code": created["tax_code"]})
    assert page["total"] == 1


def test_invalid_partner_is_not_stored(partners: Any) -> None:
    with pytest.raises(RemoteError) as raised:
        partners.register_partner(
            payload={"kind": "cooperativa", "name": "Coop X", "tax_code": "12345678901", "comune_istat": "012042"}
        )
    assert error_type(raised.value) == "ValidationFailed"
    assert partners.list_partners(query={})["total"] == 0


def test_alliance_with_members_emits_events(partners: Any, recorder: Any) -> None:
    capofila = register(partners, "asc_medio_olona")
    marnate = register(partners, "comune_marnate")
    il_seme = register(partners, "coop_il_seme")
    payload = {
        "code": "CASTELLANZA",
        "name": CASTELLANZA.name,
        "ambiti": [{"name": n, "comuni_istat": c} for n, c in CASTELLANZA.ambiti],
        "capofila_partner_id": capofila["id"],
    }
    with entrypoint_waiter(recorder, "on_alliance_created", timeout=10):
        alliance = partners.create_alliance(payload=payload)
    assert alliance["member_count"] == 1 and len(alliance["ambiti"]) == 2

    with entrypoint_waiter(
        recorder,
        "on_membership_changed",
        timeout=10,
        callback=lambda worker_ctx, result, exc_info: worker_ctx.args[0]["partner_id"] == il_seme["id"],
    ):
        partners.add_member(alliance_id=alliance["id"], payload={"partner_id": marnate["id"], "status": "formalized"})
        partners.add_member(alliance_id=alliance["id"], payload={"partner_id": il_seme["id"]})

    members = partners.list_members(alliance_id=alliance["id"], query={})
    assert next(m["partner"]["name"] for m in members["items"]) == capofila["name"]
    assert {m["partner"]["id"]: m["status"] for m in members["items"]}[il_seme["id"]] == "pending"
    pending = partners.list_members(alliance_id=alliance["id"], query={"status": "pending"})
    assert pending["total"] == 1

    formalized = partners.formalize_member(alliance_id=alliance["id"], partner_id=il_seme["id"])
    assert formalized["status"] == "formalized"

    created_events = [p for kind, p in EventRecorder.received if kind == "alliance.created"]
    assert created_events[0]["code"] == "CASTELLANZA"
    assert {"event_id", "occurred_at", "schema_version", "alliance_id"} <= set(created_events[0])
    assert partners.list_alliances(alliance_ids=None, page={})["items"][0]["member_count"] == 3


def test_published_events_leave_the_outbox(
    partners: Any, recorder: Any, mongo_client: Any, fresh_database: str
) -> None:
    capofila = register(partners, "asc_medio_olona")
    payload = {
        "code": "TEST-O",
        "name": "Alleanza outbox",
        "ambiti": [{"name": "Ambito", "comuni_istat": ["012042"]}],
        "capofila_partner_id": capofila["id"],
    }
    with entrypoint_waiter(recorder, "on_alliance_created", timeout=10):
        alliance = partners.create_alliance(payload=payload)
    stored = mongo_client[fresh_database].alliances.find_one({"_id": alliance["id"]})
    assert stored["_outbox"] == [] and stored["_outbox_pending"] is False


def test_second_capofila_and_duplicate_code_are_conflicts(partners: Any) -> None:
    capofila = register(partners, "asc_medio_olona")
    other = register(partners, "comune_marnate")
    payload = {
        "code": "TEST-A",
        "name": "Alleanza di prova",
        "ambiti": [{"name": "Ambito", "comuni_istat": ["012042"]}],
        "capofila_partner_id": capofila["id"],
    }
    alliance = partners.create_alliance(payload=payload)
    with pytest.raises(RemoteError) as raised:
        partners.add_member(alliance_id=alliance["id"], payload={"partner_id": other["id"], "role": "capofila"})
    assert error_type(raised.value) == "Conflict"
    with pytest.raises(RemoteError) as raised:
        partners.create_alliance(payload=payload)
    assert error_type(raised.value) == "Conflict"
    assert partners.list_alliances(alliance_ids=None, page={})["total"] == 1


def test_project_amounts_must_add_up(partners: Any, recorder: Any) -> None:
    capofila = register(partners, "asc_medio_olona")
    alliance = partners.create_alliance(
        payload={
            "code": "TEST-P",
            "name": "Alleanza progetti",
            "ambiti": [{"name": "Ambito", "comuni_istat": ["012042"]}],
            "capofila_partner_id": capofila["id"],
        }
    )
    wrong = {**CASTELLANZA.project, "total_cost_cents": 6_000_000}
    with pytest.raises(RemoteError) as raised:
        partners.create_project(alliance_id=alliance["id"], payload=wrong)
    assert error_type(raised.value) == "ValidationFailed"
    assert partners.list_projects(alliance_id=alliance["id"], page={})["total"] == 0

    with entrypoint_waiter(recorder, "on_project_created", timeout=10):
        project = partners.create_project(alliance_id=alliance["id"], payload=CASTELLANZA.project)
    assert project["total_cost_cents"] == 6_074_100 and [a["code"] for a in project["actions"]] == [
        "A",
        "B",
        "C1",
        "D",
        "E1",
    ]


def test_two_instances_share_work(container_factory: Any, config: dict[str, Any]) -> None:
    for _ in range(2):
        container_factory(PartnersService, config).start()
    with ServiceRpcClient("partners") as client:
        results = [client.ping() for _ in range(6)]
    assert results == ["pong"] * 6


def test_concurrent_member_changes_lose_nothing(container_factory: Any, config: dict[str, Any]) -> None:
    """Two instances, eight staff members adding partners at once: all eight stick."""
    import eventlet

    for _ in range(2):
        container_factory(PartnersService, config).start()
    keys = ["comune_marnate", "comune_fagnano", "comune_castellanza", "comune_olgiate", "comune_solbiate",
            "comune_gorla_maggiore", "comune_gorla_minore", "coop_totem"]  # fmt: skip
    with ServiceRpcClient("partners") as client:
        capofila = register(client, "asc_medio_olona")
        ids = [register(client, key)["id"] for key in keys]
        alliance = client.create_alliance(
            payload={
                "code": "TEST-C",
                "name": "Alleanza concorrente",
                "ambiti": [{"name": "Ambito", "comuni_istat": ["012042"]}],
                "capofila_partner_id": capofila["id"],
            }
        )

    def add(partner_id: str) -> str:
        with ServiceRpcClient("partners") as own_client:
            member = own_client.add_member(alliance_id=alliance["id"], payload={"partner_id": partner_id})
            return str(member["partner"]["id"])

    added = list(eventlet.GreenPool(8).imap(add, ids))
    assert sorted(added) == sorted(ids)
    with ServiceRpcClient("partners") as client:
        members = client.list_members(alliance_id=alliance["id"], query={"limit": 200})
    assert members["total"] == 9
    assert {m["partner"]["id"] for m in members["items"]} == {capofila["id"], *ids}


def _alliance_with_partners(client: Any, code: str, count: int) -> tuple[dict[str, Any], list[str]]:
    capofila = register(client, "asc_medio_olona")
    ids = [
        client.register_partner(
            payload={
                "kind": "cooperativa",
                "name": f"Cooperativa di prova {n:02d}",
                "tax_code": demo_tax_code(8_100_000 + n),
                "comune_istat": "012042",
            }
        )["id"]
        for n in range(count)
    ]
    alliance = client.create_alliance(
        payload={
            "code": code,
            "name": "Alleanza concorrente",
            "ambiti": [{"name": "Ambito", "comuni_istat": ["012042"]}],
            "capofila_partner_id": capofila["id"],
        }
    )
    return alliance, ids


def test_twenty_concurrent_member_additions_on_two_instances_lose_none(
    container_factory: Any, config: dict[str, Any], mongo_client: Any, fresh_database: str
) -> None:
    """As many concurrent additions as the two instances have workers (10 each): every
    one is stored, each exactly once, and the alliance's version counts every write."""
    import eventlet

    for _ in range(2):
        container_factory(PartnersService, config).start()
    with ServiceRpcClient("partners") as client:
        alliance, ids = _alliance_with_partners(client, "TEST-N", 20)

    def add(partner_id: str) -> str:
        with ServiceRpcClient("partners") as own_client:
            member = own_client.add_member(alliance_id=alliance["id"], payload={"partner_id": partner_id})
            return str(member["partner"]["id"])

    added = list(eventlet.GreenPool(20).imap(add, ids))
    assert sorted(added) == sorted(ids)
    stored = mongo_client[fresh_database].alliances.find_one({"_id": alliance["id"]})
    assert sorted(m["partner_id"] for m in stored["members"]) == sorted([alliance["capofila_partner_id"], *ids])
    assert stored["version"] == 1 + len(ids)


def test_concurrent_project_updates_of_one_version_have_one_winner(
    container_factory: Any, config: dict[str, Any]
) -> None:
    """Eight staff members on two instances save the project they all read at version 1:
    exactly one write is stored, the other seven are told it changed meanwhile."""
    import eventlet

    for _ in range(2):
        container_factory(PartnersService, config).start()
    with ServiceRpcClient("partners") as client:
        alliance, _ = _alliance_with_partners(client, "TEST-V", 0)
        project = client.create_project(alliance_id=alliance["id"], payload=CASTELLANZA.project)
    assert project["version"] == 1

    def save(n: int) -> str:
        payload = {**CASTELLANZA.project, "title": f"Work Life Balance, revisione {n}"}
        with ServiceRpcClient("partners") as own_client:
            try:
                own_client.update_project(
                    alliance_id=alliance["id"], project_id=project["id"], payload=payload, version=1
                )
            except RemoteError as exc:
                return error_type(exc)
            return "ok"

    outcomes = list(eventlet.GreenPool(8).imap(save, range(8)))
    assert sorted(outcomes) == ["Conflict"] * 7 + ["ok"]
    with ServiceRpcClient("partners") as client:
        stored = client.get_project(alliance_id=alliance["id"], project_id=project["id"])
        assert stored["version"] == 2
        assert stored["title"] == f"Work Life Balance, revisione {outcomes.index('ok')}"
        # A stale version stays refused; without one the last writer wins, whole.
        with pytest.raises(RemoteError) as raised:
            client.update_project(
                alliance_id=alliance["id"], project_id=project["id"], payload=CASTELLANZA.project, version=1
            )
        assert error_type(raised.value) == "Conflict"
        latest = client.update_project(
            alliance_id=alliance["id"], project_id=project["id"], payload=CASTELLANZA.project
        )
        assert latest["version"] == 3 and latest["title"] == CASTELLANZA.project["title"]


# --- issue 7: idempotent creates, registered partners, member lists, project rules -----


def _partner_payload(key: str) -> dict[str, Any]:
    demo = PARTNER_BY_KEY[key]
    return {"kind": demo.kind, "name": demo.name, "tax_code": demo.tax_code, "comune_istat": demo.comune_istat}


def _alliance_payload(capofila_id: str, code: str) -> dict[str, Any]:
    return {
        "code": code,
        "name": "Alleanza idempotente",
        "ambiti": [{"name": "Ambito", "comuni_istat": ["012042", "012098"]}],
        "capofila_partner_id": capofila_id,
    }


def test_creates_retried_with_their_key_return_the_first_and_store_one(
    partners: Any, mongo_client: Any, fresh_database: str
) -> None:
    db = mongo_client[fresh_database]
    by = "user:manager-castellanza"
    capofila = partners.register_partner(
        payload=_partner_payload("comune_castellanza"), request_key="k1", requested_by=by
    )
    again = partners.register_partner(payload=_partner_payload("comune_castellanza"), request_key="k1", requested_by=by)
    assert again == capofila and db.partners.count_documents({}) == 1

    alliance = partners.create_alliance(
        payload=_alliance_payload(capofila["id"], "IDEM"), request_key="k2", requested_by=by
    )
    assert (
        partners.create_alliance(payload=_alliance_payload(capofila["id"], "IDEM"), request_key="k2", requested_by=by)
        == alliance
    )
    assert db.alliances.count_documents({}) == 1

    member_partner = partners.register_partner(payload=_partner_payload("coop_totem"))
    member = partners.add_member(
        alliance_id=alliance["id"], payload={"partner_id": member_partner["id"]}, request_key="k3", requested_by=by
    )
    assert (
        partners.add_member(
            alliance_id=alliance["id"], payload={"partner_id": member_partner["id"]}, request_key="k3", requested_by=by
        )
        == member
    )
    with pytest.raises(RemoteError) as raised:  # no key: "already a member", as before
        partners.add_member(alliance_id=alliance["id"], payload={"partner_id": member_partner["id"]})
    assert error_type(raised.value) == "Conflict"
    assert db.alliances.find_one({"_id": alliance["id"]})["version"] == 2

    project = partners.create_project(
        alliance_id=alliance["id"], payload=CASTELLANZA.project, request_key="k4", requested_by=by
    )
    assert (
        partners.create_project(
            alliance_id=alliance["id"], payload=CASTELLANZA.project, request_key="k4", requested_by=by
        )
        == project
    )
    assert db.projects.count_documents({}) == 1


def test_a_partner_is_readable_by_who_registered_it(partners: Any) -> None:
    created = partners.register_partner(payload=_partner_payload("coop_totem"), requested_by="user:manager")
    access = partners.partner_access(partner_id=created["id"])
    assert access == {"partner_id": created["id"], "alliance_ids": [], "registered_by": "user:manager"}
    mine = partners.list_partners(query={"alliance_ids": [], "registered_by": "user:manager"})
    assert [p["id"] for p in mine["items"]] == [created["id"]]
    assert partners.list_partners(query={"alliance_ids": [], "registered_by": "user:other"})["total"] == 0


def test_member_lists_leave_withdrawn_out_and_match_member_count(partners: Any) -> None:
    capofila = register(partners, "comune_castellanza")
    alliance = partners.create_alliance(payload=_alliance_payload(capofila["id"], "MEMBRI"))
    leaving = register(partners, "coop_totem")
    staying = register(partners, "coop_rembrandt")
    for partner in (leaving, staying):
        partners.add_member(alliance_id=alliance["id"], payload={"partner_id": partner["id"]})
    partners.withdraw_member(alliance_id=alliance["id"], partner_id=leaving["id"])
    listed = partners.list_members(alliance_id=alliance["id"], query={})
    assert {m["partner"]["id"] for m in listed["items"]} == {capofila["id"], staying["id"]}
    assert listed["total"] == partners.get_alliance(alliance_id=alliance["id"])["member_count"] == 2
    assert partners.list_members(alliance_id=alliance["id"], query={"include_withdrawn": True})["total"] == 3
    gone = partners.list_members(alliance_id=alliance["id"], query={"status": "withdrawn"})
    assert [m["partner"]["id"] for m in gone["items"]] == [leaving["id"]]


def test_alliances_covering_a_comune(partners: Any) -> None:
    capofila = register(partners, "comune_castellanza")
    alliance = partners.create_alliance(payload=_alliance_payload(capofila["id"], "COPRE"))
    assert partners.alliances_covering(comune_istat="012098") == [alliance["id"]]
    assert partners.alliances_covering(comune_istat="015146") == []


def test_an_all_zero_project_in_2000_is_refused_field_by_field(partners: Any) -> None:
    capofila = register(partners, "comune_castellanza")
    alliance = partners.create_alliance(payload=_alliance_payload(capofila["id"], "ZERO"))
    zero = {
        "title": "Progetto vuoto",
        "period_start": "2000-01-01",
        "period_end": "2000-01-01",
        "total_cost_cents": 0,
        "requested_contribution_cents": 0,
        "cofinancing": {},
    }
    with pytest.raises(RemoteError) as raised:
        partners.create_project(alliance_id=alliance["id"], payload=zero)
    assert error_type(raised.value) == "ValidationFailed"
    for field in ("period_start", "period_end", "total_cost_cents", "requested_contribution_cents"):
        assert field in str(raised.value.value)
    assert partners.list_projects(alliance_id=alliance["id"], page={})["total"] == 0
