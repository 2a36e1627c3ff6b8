"""Interface tests of the vouchers service: real containers on RabbitMQ and a MongoDB-wire server.

The enrolment, partners and catalog services are stood in for by small nameko
services on the same per-test virtual host that answer exactly the RPCs the
vouchers service calls, with the seed data (Castellanza, Coop. Totem, 300 € cap).
"""

import base64
import csv
import io
import zipfile
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import eventlet
import pytest
from nameko.events import event_handler
from nameko.exceptions import RemoteError
from nameko.rpc import rpc
from nameko.standalone.rpc import ServiceRpcClient
from nameko.testing.services import entrypoint_waiter

from services.vouchers.service import VouchersService

pytestmark = pytest.mark.integration

ALLIANCE = "all-castellanza"
OTHER_ALLIANCE = "all-crema"
PROJECT = "prj-castellanza"
TOTEM = "coop-totem"
MARNATE = "012098"
STAFF = {"subject": "castellanza.staff", "role": "alliance_manager", "alliance_ids": [ALLIANCE]}
OTHER_STAFF = {"subject": "crema.staff", "role": "alliance_manager", "alliance_ids": [OTHER_ALLIANCE]}
PROVIDER = {"subject": "totem.operatore", "role": "partner_operator", "partner_id": TOTEM, "alliance_ids": [ALLIANCE]}
ADMIN = {"subject": "regione.admin", "role": "platform_admin"}
NOW = datetime.now(UTC)
# Codici fiscali of the generated families: valid shape, one per child.
LETTERS = "ABCDEFGHLMNPRSTVZ"


def family(n: int) -> dict[str, Any]:
    return {"subject": f"famiglia.{n:03d}", "role": "family"}


def guardian_cf(n: int) -> str:
    return f"RSS{LETTERS[n % 17]}{LETTERS[(n // 17) % 17]}R80A01F205{LETTERS[n % 17]}"


def child_cf(n: int) -> str:
    return f"BNC{LETTERS[n % 17]}{LETTERS[(n // 17) % 17]}R19P45F205{LETTERS[n % 17]}"


class EnrolmentStub:
    """Households h<n> with one child c<n> (7 years old), employed by Coop. Totem or elsewhere."""

    name = "enrolment"

    @rpc
    def get_household(self, household_id: str, viewer: dict[str, Any]) -> dict[str, Any]:
        n = int(household_id[1:])
        if viewer.get("subject") != family(n)["subject"]:
            from conciliare.errors import NotFound

            raise NotFound("Nucleo non trovato.")
        employed_here = n % 5 != 4  # every fifth family works elsewhere and lives outside
        return {
            "id": household_id,
            "guardians": [
                {
                    "first_name": "Maria",
                    "last_name": "Rossi",
                    "codice_fiscale": guardian_cf(n),
                    "employment": "employed_by_partner" if employed_here else "employed_elsewhere",
                    "employer_partner_id": TOTEM if employed_here else None,
                }
            ],
            "residence_comune_istat": MARNATE if employed_here else "015146",
            "residence_comune_name": "Marnate",
            "isee": {"value_cents": 500_000 + (n % 7) * 300_000, "kind": "ordinario", "expires_on": "2099-12-31"},
            "single_parent": n % 3 == 0,
            "created_at": NOW.isoformat(),
        }

    @rpc
    def list_children(self, household_id: str, viewer: dict[str, Any]) -> list[dict[str, Any]]:
        n = int(household_id[1:])
        return [
            {
                "id": f"c{n}",
                "household_id": household_id,
                "first_name": "Giulia",
                "last_name": "Rossi",
                "codice_fiscale": child_cf(n),
                "birth_date": (NOW.date() - timedelta(days=7 * 365)).isoformat(),
                "needs": ["disabilita"] if n % 4 == 0 else [],
                "created_at": NOW.isoformat(),
            }
        ]

    @rpc
    def get_enrolment(self, enrolment_id: str, viewer: dict[str, Any]) -> dict[str, Any]:
        child = enrolment_id.removeprefix("e-")
        return {
            "id": enrolment_id,
            "offering_id": "off-babysitting",
            "offering_title": "Baby-sitting Totem",
            "alliance_id": ALLIANCE,
            "provider_partner_id": TOTEM,
            "child_id": child,
            "child_name": "Giulia Rossi",
            "child_codice_fiscale": "BNC**********",
            "household_id": "h" + child[1:],
            "period": {"start": "2027-01-01", "end": "2027-12-31"},
            "attendance_mode": "hour_package",
            "chosen_weekdays": None,
            "hours": 40,
            "status": "confirmed",
            "status_label": "Confermata",
            "sequence": 1,
            "waitlist_position": None,
            "promoted": False,
            "refusal_reasons": [],
            "protocol": f"ISC-20270101-090000-{child.upper():0>8}",
            "accepted_at": NOW.isoformat(),
            "requested_at": NOW.isoformat(),
            "decided_at": NOW.isoformat(),
            "cancelled_at": None,
            "cancel_reason": None,
        }

    @rpc
    def get_attendance(self, enrolment_id: str, viewer: dict[str, Any]) -> dict[str, Any]:
        return {
            "enrolment_id": enrolment_id,
            "entries": [{"day": "2027-03-01", "present": True, "hours": 2.5}],
            "months": [{"month": "2027-03", "days_present": 1, "hours": 2.5}],
            "totals": {"days_present": 1, "hours": 2.5},
        }


class PartnersStub:
    name = "partners"

    @rpc
    def alliance_territory(self, alliance_id: str) -> dict[str, Any]:
        return {"alliance_id": alliance_id, "comuni_istat": [MARNATE, "012042"], "formalized_partner_ids": [TOTEM]}

    @rpc
    def get_project(self, alliance_id: str, project_id: str) -> dict[str, Any]:
        return {
            "id": project_id,
            "alliance_id": alliance_id,
            "title": "La conciliazione... pronti, via sperimentiamo...",
            "period_start": "2027-01-01",
            "period_end": "2028-12-31",
            "total_cost_cents": 6_074_100,
            "requested_contribution_cents": 3_200_000,
            "cofinancing": {"cash_cents": 0, "valued_work_hours_cents": 2_874_100},
            "funding_sources": [{"name": "Regione Lombardia", "amount_cents": 3_200_000}],
            "actions": [{"code": "A", "title": "Assistenza e trasporto"}, {"code": "B", "title": "Infanzia"}],
            "created_at": NOW.isoformat(),
            "updated_at": NOW.isoformat(),
            "version": 1,
        }


class CatalogStub:
    name = "catalog"

    @rpc
    def get_snapshot(self, offering_id: str) -> dict[str, Any]:
        return {
            "offering_id": offering_id,
            "alliance_id": ALLIANCE,
            "provider_partner_id": TOTEM,
            "status": "published",
            "type": "baby_sitting",
            "title": "Baby-sitting Totem",
            "comune_istat": "012042",
            "capacity": 30,
            "age_min_months": 0,
            "age_max_months": 192,
            "special_needs_supported": [],
            "attendance_modes": ["hour_package"],
            "periods": [],
            "price_cents": 1_200,
            "price_unit": "hour",
            "version": 1,
        }


class EventRecorder:
    name = "vouchers_event_recorder"
    received: list[tuple[str, dict[str, Any]]] = []

    @event_handler("vouchers", "programme.opened")
    def on_opened(self, payload: dict[str, Any]) -> None:
        EventRecorder.received.append(("programme.opened", payload))

    @event_handler("vouchers", "ranking.published")
    def on_published(self, payload: dict[str, Any]) -> None:
        EventRecorder.received.append(("ranking.published", payload))

    @event_handler("vouchers", "voucher.redeemed")
    def on_redeemed(self, payload: dict[str, Any]) -> None:
        EventRecorder.received.append(("voucher.redeemed", payload))


@pytest.fixture
def stubs(container_factory: Any, config: dict[str, Any]) -> None:
    for stub in (EnrolmentStub, PartnersStub, CatalogStub):
        container_factory(stub, {**config, "max_workers": 40}).start()


@pytest.fixture
def vouchers(container_factory: Any, config: dict[str, Any], stubs: None) -> Iterator[Any]:
    container_factory(VouchersService, config).start()
    with ServiceRpcClient("vouchers") as client:
        yield client


@pytest.fixture
def recorder(container_factory: Any, config: dict[str, Any]) -> Any:
    EventRecorder.received = []
    container = container_factory(EventRecorder, config)
    container.start()
    return container


def error_type(exc: RemoteError) -> str:
    return str(exc.exc_type)


def programme_payload(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "alliance_id": ALLIANCE,
        "project_id": PROJECT,
        "action_code": "B",
        "title": "Voucher conciliazione: servizi per l'infanzia",
        "year": NOW.year,
        "budget_cents": 150_000,
        "funding_sources": [
            {"name": "Regione Lombardia", "amount_cents": 100_000},
            {"name": "Cofinanziamento alleanza", "amount_cents": 50_000},
        ],
        "eligible_service_types": ["baby_sitting", "micronido", "ludoteca"],
        "who_may_apply": "both",
        "isee_max_cents": 4_000_000,
        "opens_at": (NOW - timedelta(days=1)).isoformat(),
        "closes_at": (NOW + timedelta(days=30)).isoformat(),
        "criteria": [
            {
                "kind": "isee_bands",
                "bands": [{"max_isee_cents": 1_000_000, "points": 30}, {"max_isee_cents": 4_000_000, "points": 10}],
            },
            {"kind": "single_parent", "points": 15},
            {"kind": "child_disability", "points": 20},
        ],
        "voucher_valid_until": (NOW + timedelta(days=365)).date().isoformat(),
    }
    payload.update(changes)
    return payload


def apply(client: Any, programme_id: str, n: int, **changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "household_id": f"h{n}",
        "child_id": f"c{n}",
        "no_double_funding": True,
        "attachments": [
            {"kind": "isee_certificate", "object_key": f"vouchers/famiglia.{n:03d}/isee.pdf", "filename": "isee.pdf"}
        ],
    }
    payload.update(changes)
    return dict(client.submit_application(programme_id=programme_id, viewer=family(n), payload=payload))


def awarded_programme(client: Any, families: range, **changes: Any) -> dict[str, Any]:
    """A programme run from bando to award through the service, for the given families."""
    programme = client.create_programme(viewer=STAFF, payload=programme_payload(**changes))
    client.open_programme(programme_id=programme["id"], viewer=STAFF)
    for n in families:
        apply(client, programme["id"], n)
    client.confirm_reviews(programme_id=programme["id"], viewer=STAFF)
    client.close_programme(programme_id=programme["id"], viewer=STAFF, payload={})
    client.rank_programme(programme_id=programme["id"], viewer=STAFF)
    client.publish_ranking(programme_id=programme["id"], viewer=STAFF)
    return dict(client.award_programme(programme_id=programme["id"], viewer=STAFF))


# --- programmes ---------------------------------------------------------------------


def test_programme_rules_are_validated_when_it_opens(vouchers: Any, recorder: Any) -> None:
    wrong = vouchers.create_programme(viewer=STAFF, payload=programme_payload(budget_cents=140_000))
    assert wrong["status"] == "draft"
    with pytest.raises(RemoteError) as raised:
        vouchers.open_programme(programme_id=wrong["id"], viewer=STAFF)
    assert error_type(raised.value) == "ValidationFailed"
    assert vouchers.get_programme(programme_id=wrong["id"], viewer=STAFF)["status"] == "draft"

    good = vouchers.create_programme(viewer=STAFF, payload=programme_payload())
    with entrypoint_waiter(recorder, "on_opened", timeout=10):
        opened = vouchers.open_programme(programme_id=good["id"], viewer=STAFF)
    assert opened["status"] == "open"
    assert [(h["status"], h["by"]) for h in opened["history"]] == [
        ("draft", "castellanza.staff"),
        ("open", "castellanza.staff"),
    ]
    assert EventRecorder.received[0][1]["programme_id"] == good["id"]


def test_programme_needs_an_action_of_the_project_and_staff_of_the_alliance(vouchers: Any) -> None:
    with pytest.raises(RemoteError) as raised:
        vouchers.create_programme(viewer=STAFF, payload=programme_payload(action_code="E1"))
    assert error_type(raised.value) == "ValidationFailed"
    with pytest.raises(RemoteError) as raised:
        vouchers.create_programme(viewer=OTHER_STAFF, payload=programme_payload())
    assert error_type(raised.value) == "NotFound"
    draft = vouchers.create_programme(viewer=STAFF, payload=programme_payload())
    for viewer in (OTHER_STAFF, family(1)):
        with pytest.raises(RemoteError) as raised:
            vouchers.get_programme(programme_id=draft["id"], viewer=viewer)
        assert error_type(raised.value) == "NotFound"
    assert vouchers.list_programmes(viewer=OTHER_STAFF, query={})["total"] == 0
    assert vouchers.list_programmes(viewer=ADMIN, query={})["total"] == 1


# --- applications -----------------------------------------------------------------


def test_application_freezes_household_data_and_checks_eligibility(vouchers: Any) -> None:
    programme = vouchers.create_programme(viewer=STAFF, payload=programme_payload())
    vouchers.open_programme(programme_id=programme["id"], viewer=STAFF)
    first = apply(vouchers, programme["id"], 1)
    assert first["protocol"] == f"{NOW.year}/000001" and first["status"] == "submitted"
    assert first["automatic_reasons"] == []
    assert first["snapshot"]["guardians"][0]["employer_partner_id"] == TOTEM
    assert first["snapshot"]["isee_cents"] == 800_000
    assert {b["kind"]: b["points"] for b in first["breakdown"]} == {
        "isee_bands": 30,
        "single_parent": 0,
        "child_disability": 0,
    }

    # Family 4 works elsewhere and lives outside the alliance; no declaration, no ISEE file.
    outsider = apply(vouchers, programme["id"], 4, no_double_funding=False, attachments=[])
    assert [r["code"] for r in outsider["automatic_reasons"]] == [
        "residence_or_employment",
        "double_funding",
        "attachment_isee_certificate",
    ]
    # Disability priority: the child's need is known and the diagnosis attached.
    diagnosis = {"kind": "diagnosis", "object_key": "vouchers/famiglia.008/d.pdf", "filename": "diagnosi.pdf"}
    isee = {"kind": "isee_certificate", "object_key": "vouchers/famiglia.008/i.pdf", "filename": "isee.pdf"}
    with pytest.raises(RemoteError) as raised:  # another family's document
        apply(vouchers, programme["id"], 8, attachments=[{**isee, "object_key": "vouchers/famiglia.001/isee.pdf"}])
    assert error_type(raised.value) == "ValidationFailed"
    priority = apply(vouchers, programme["id"], 8, claims_disability_priority=True, attachments=[isee, diagnosis])
    assert priority["automatic_reasons"] == [] and priority["breakdown"][2]["points"] == 20

    with pytest.raises(RemoteError) as raised:
        apply(vouchers, programme["id"], 1)
    assert error_type(raised.value) == "Conflict"
    with pytest.raises(RemoteError) as raised:  # another family's household
        vouchers.submit_application(
            programme_id=programme["id"],
            viewer=family(2),
            payload={"household_id": "h1", "child_id": "c1", "no_double_funding": True},
        )
    assert error_type(raised.value) == "NotFound"

    withdrawn = vouchers.withdraw_application(application_id=first["id"], viewer=family(1), payload={})
    assert withdrawn["status"] == "withdrawn"
    again = apply(vouchers, programme["id"], 1)
    assert again["protocol"] == f"{NOW.year}/000004"

    mine = vouchers.list_applications(programme_id=programme["id"], viewer=family(1), query={})
    assert mine["total"] == 2
    assert vouchers.list_applications(programme_id=programme["id"], viewer=STAFF, query={})["total"] == 4
    with pytest.raises(RemoteError) as raised:
        vouchers.get_application(application_id=again["id"], viewer=family(2))
    assert error_type(raised.value) == "NotFound"


def test_review_override_needs_a_note_and_ranking_needs_reviews(vouchers: Any) -> None:
    programme = vouchers.create_programme(viewer=STAFF, payload=programme_payload())
    vouchers.open_programme(programme_id=programme["id"], viewer=STAFF)
    outsider = apply(vouchers, programme["id"], 4)
    apply(vouchers, programme["id"], 1)
    vouchers.close_programme(programme_id=programme["id"], viewer=STAFF, payload={"note": "scadenza"})
    with pytest.raises(RemoteError) as raised:
        vouchers.rank_programme(programme_id=programme["id"], viewer=STAFF)
    assert error_type(raised.value) == "Conflict" and "istruite" in str(raised.value)
    with pytest.raises(RemoteError) as raised:
        vouchers.review_application(application_id=outsider["id"], viewer=STAFF, payload={"eligible": True})
    assert error_type(raised.value) == "ValidationFailed"
    reviewed = vouchers.review_application(
        application_id=outsider["id"],
        viewer=STAFF,
        payload={"eligible": True, "note": "Residenza a Marnate verificata all'anagrafe"},
    )
    assert reviewed["status"] == "eligible" and reviewed["reviewed_by"] == "castellanza.staff"
    assert vouchers.confirm_reviews(programme_id=programme["id"], viewer=STAFF) == 1


# --- ranking, award, ledger ---------------------------------------------------------


def test_from_bando_to_award_the_ranking_is_explained_and_the_ledger_reconciles(
    vouchers: Any, recorder: Any, mongo_client: Any, fresh_database: str
) -> None:
    programme = vouchers.create_programme(viewer=STAFF, payload=programme_payload(partial_last_award=True))
    pid = programme["id"]
    vouchers.open_programme(programme_id=pid, viewer=STAFF)
    for n in range(1, 11):
        apply(vouchers, pid, n)
    assert vouchers.confirm_reviews(programme_id=pid, viewer=STAFF) == 10
    vouchers.close_programme(programme_id=pid, viewer=STAFF, payload={})
    vouchers.rank_programme(programme_id=pid, viewer=STAFF)
    with pytest.raises(RemoteError):  # families see no draft ranking
        vouchers.get_ranking(programme_id=pid, viewer=family(1), page={})
    again = vouchers.rank_programme(programme_id=pid, viewer=STAFF)  # a draft can be recomputed
    assert again["status"] == "ranked"
    draft = vouchers.get_ranking(programme_id=pid, viewer=STAFF, page={"limit": 200})
    entries = draft["entries"]
    # 8 eligible (families 4 and 9 are outsiders), 150,000 cents: 5 vouchers of 300 €.
    assert len(entries) == 8 and draft["final"] is False
    assert [e["outcome"] for e in entries] == ["awarded"] * 5 + ["not_awarded"] * 3
    scores = [e["score"] for e in entries]
    assert scores == sorted(scores, reverse=True)
    assert all(e["breakdown"] for e in entries)
    assert any(e["placed_by"] in ("lower_isee", "earlier_submission", "protocol_number") for e in entries)

    with entrypoint_waiter(recorder, "on_published", timeout=10):
        vouchers.publish_ranking(programme_id=pid, viewer=STAFF)
    with pytest.raises(RemoteError) as raised:  # one-way
        vouchers.rank_programme(programme_id=pid, viewer=STAFF)
    assert error_type(raised.value) == "Conflict"
    public = vouchers.get_ranking(programme_id=pid, viewer=family(1), page={})
    assert public["final"] is True and all(e["breakdown"] == [] for e in public["entries"])
    assert all(len(e["codice_fiscale_masked"]) == 16 and "*" * 10 in e["codice_fiscale_masked"] for e in entries)

    exported = vouchers.export_ranking(programme_id=pid, viewer=family(1), fmt="csv")
    text = base64.b64decode(exported["content_b64"]).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))
    assert rows[0][:3] == ["Posizione", "Protocollo", "Codice fiscale"] and len(rows) == 9
    assert "disabil" not in text.lower() and "RSS" in text and guardian_cf(1) not in text
    pdf = vouchers.export_ranking(programme_id=pid, viewer=STAFF, fmt="pdf")
    assert base64.b64decode(pdf["content_b64"]).startswith(b"%PDF")

    awarded = vouchers.award_programme(programme_id=pid, viewer=STAFF)
    assert awarded["status"] == "awarded" and awarded["awarded_cents"] == 150_000
    with pytest.raises(RemoteError):
        vouchers.award_programme(programme_id=pid, viewer=STAFF)
    staff_vouchers = vouchers.list_vouchers(viewer=STAFF, query={"programme_id": pid})
    assert staff_vouchers["total"] == 5
    winner = next(e for e in entries if e["outcome"] == "awarded")
    holder = vouchers.get_application(application_id=winner["application_id"], viewer=STAFF)["applicant_subject"]
    mine = vouchers.list_vouchers(viewer={"subject": holder, "role": "family"}, query={})["items"]
    assert len(mine) == 1 and mine[0]["balance_cents"] == 30_000
    code = mine[0]["code"]
    assert len(code) == 11 and not set(code) & set("01OIU")
    seen = vouchers.voucher_by_code(code=code.lower().replace("-", " "), viewer=PROVIDER)
    assert seen["id"] == mine[0]["id"]
    qr = vouchers.voucher_qr(voucher_id=mine[0]["id"], viewer={"subject": holder, "role": "family"})
    assert b"<svg" in base64.b64decode(qr["content_b64"])

    ledger = vouchers.get_ledger(programme_id=pid, viewer=STAFF)
    assert (ledger["budget_cents"], ledger["awarded_cents"], ledger["available_cents"]) == (150_000, 150_000, 0)
    assert [s["awarded_cents"] for s in ledger["sources"]] == [100_000, 50_000]
    assert ledger["reconciles"] is True
    xlsx = base64.b64decode(vouchers.export_ledger(programme_id=pid, viewer=STAFF, fmt="xlsx")["content_b64"])
    assert zipfile.ZipFile(io.BytesIO(xlsx)).namelist()
    ledger_csv = base64.b64decode(vouchers.export_ledger(programme_id=pid, viewer=STAFF, fmt="csv")["content_b64"])
    assert ledger_csv.decode("utf-8-sig").count("Assegnazione") == 1  # one entry per award, 1.500,00 €
    assert "1500,00" in ledger_csv.decode("utf-8-sig")
    stored = mongo_client[fresh_database].programmes.find_one({"_id": pid})
    assert [h["status"] for h in stored["history"]] == [
        "draft",
        "open",
        "closed",
        "ranked",
        "ranked",
        "published",
        "awarded",
    ]


def test_partial_last_award_and_places_mode(vouchers: Any) -> None:
    partial = awarded_programme(vouchers, range(1, 5), budget_cents=70_000, partial_last_award=True,
                                funding_sources=[{"name": "ATS", "amount_cents": 70_000}])  # fmt: skip
    ranking = vouchers.get_ranking(programme_id=partial["id"], viewer=STAFF, page={})
    assert [(e["outcome"], e["award_cents"]) for e in ranking["entries"]] == [
        ("awarded", 30_000),
        ("awarded", 30_000),
        ("partial", 10_000),
    ]
    places = awarded_programme(vouchers, range(5, 12), ranking_mode="places", places=2)
    assert places["awarded_cents"] == 60_000


# --- redemptions ----------------------------------------------------------------------


def _voucher_of(client: Any, n: int, programme_id: str) -> dict[str, Any]:
    items = client.list_vouchers(viewer=family(n), query={"programme_id": programme_id})["items"]
    return dict(items[0])


def test_redemption_rules_invoice_once_and_reversal(vouchers: Any, recorder: Any) -> None:
    programme = awarded_programme(vouchers, range(1, 3))
    voucher = _voucher_of(vouchers, 1, programme["id"])
    with entrypoint_waiter(recorder, "on_redeemed", timeout=10):
        first = vouchers.redeem(
            voucher_id=voucher["id"],
            viewer=PROVIDER,
            payload={"enrolment_id": "e-c1", "invoice_ref": "FT 2027/15", "amount_cents": 12_000},
        )
    assert first["status"] == "completed"
    # The same invoice again (a retry): the same answer, counted once.
    retry = vouchers.redeem(
        voucher_id=voucher["id"],
        viewer=PROVIDER,
        payload={"enrolment_id": "e-c1", "invoice_ref": "ft  2027/15", "amount_cents": 12_000},
    )
    assert retry["id"] == first["id"]
    with pytest.raises(RemoteError) as raised:  # same invoice, another amount
        vouchers.redeem(
            voucher_id=voucher["id"],
            viewer=PROVIDER,
            payload={"enrolment_id": "e-c1", "invoice_ref": "FT 2027/15", "amount_cents": 5_000},
        )
    assert error_type(raised.value) == "Conflict" and "una volta sola" in str(raised.value)
    # Amount from attendance: 2.5 hours at 12 € = 30 €.
    computed = vouchers.redeem(
        voucher_id=voucher["id"], viewer=PROVIDER, payload={"enrolment_id": "e-c1", "invoice_ref": "FT 2027/16"}
    )
    assert computed["amount_cents"] == 3_000
    assert vouchers.get_voucher(voucher_id=voucher["id"], viewer=family(1))["balance_cents"] == 15_000
    with pytest.raises(RemoteError) as raised:  # another child's enrolment
        vouchers.redeem(
            voucher_id=voucher["id"],
            viewer=PROVIDER,
            payload={"enrolment_id": "e-c2", "invoice_ref": "FT 2027/17", "amount_cents": 1_000},
        )
    assert error_type(raised.value) == "Conflict"
    with pytest.raises(RemoteError) as raised:  # more than the balance
        vouchers.redeem(
            voucher_id=voucher["id"],
            viewer=PROVIDER,
            payload={"enrolment_id": "e-c1", "invoice_ref": "FT 2027/18", "amount_cents": 15_001},
        )
    assert error_type(raised.value) == "Conflict"
    with pytest.raises(RemoteError) as raised:  # providers only
        vouchers.redeem(
            voucher_id=voucher["id"],
            viewer=family(1),
            payload={"enrolment_id": "e-c1", "invoice_ref": "X", "amount_cents": 1},
        )
    assert error_type(raised.value) == "NotFound"
    assert vouchers.list_redemptions(viewer=PROVIDER, voucher_id=None, page={})["total"] == 2

    reversed_ = vouchers.reverse_redemption(
        redemption_id=first["id"], viewer=STAFF, payload={"reason": "Fattura emessa per errore"}
    )
    assert reversed_["status"] == "reversed"
    assert vouchers.get_voucher(voucher_id=voucher["id"], viewer=STAFF)["balance_cents"] == 27_000
    ledger = vouchers.get_ledger(programme_id=programme["id"], viewer=STAFF)
    assert ledger["redeemed_cents"] == 3_000 and ledger["reconciles"] is True
    assert sum(s["redeemed_cents"] for s in ledger["sources"]) == 3_000


def test_expiry_releases_the_balance_to_the_budget(vouchers: Any) -> None:
    programme = awarded_programme(vouchers, range(1, 3))
    voucher = _voucher_of(vouchers, 1, programme["id"])
    vouchers.redeem(
        voucher_id=voucher["id"],
        viewer=PROVIDER,
        payload={"enrolment_id": "e-c1", "invoice_ref": "R-1", "amount_cents": 10_000},
    )
    with pytest.raises(RemoteError):
        vouchers.expire_vouchers(viewer=STAFF, days_ahead=400)
    assert vouchers.expire_vouchers(viewer=ADMIN, days_ahead=400) == 2
    assert vouchers.get_voucher(voucher_id=voucher["id"], viewer=STAFF)["status"] == "expired"
    ledger = vouchers.get_ledger(programme_id=programme["id"], viewer=STAFF)
    assert ledger["released_cents"] == 50_000 and ledger["outstanding_cents"] == 0
    assert ledger["available_cents"] == 150_000 - 10_000 and ledger["reconciles"] is True
    with pytest.raises(RemoteError) as raised:
        vouchers.redeem(
            voucher_id=voucher["id"],
            viewer=PROVIDER,
            payload={"enrolment_id": "e-c1", "invoice_ref": "R-2", "amount_cents": 100},
        )
    assert error_type(raised.value) == "Conflict"


def test_200_simultaneous_redemptions_never_double_count(
    container_factory: Any, config: dict[str, Any], stubs: None, mongo_client: Any, fresh_database: str
) -> None:
    """Two instances, 200 redemptions at once against 20 vouchers of 10 children.

    Each child holds a 300 € voucher (programme A) and a 100 € one (programme B) of
    the same alliance, with the 300 € yearly cap across both. Every redemption is
    40 €, and each child is asked for 800 €: balances and caps would be exceeded if
    any write were counted twice. 20 of the 200 repeat an invoice already sent.
    """
    for _ in range(2):
        container_factory(VouchersService, config).start()
    children = [1, 2, 3, 5, 6, 7, 8, 10, 11, 12]  # all eligible (every fifth family is not)
    with ServiceRpcClient("vouchers") as client:
        big = awarded_programme(client, children, budget_cents=300_000,
                                funding_sources=[{"name": "FSE", "amount_cents": 200_001},
                                                 {"name": "ATS", "amount_cents": 99_999}])  # fmt: skip
        small = awarded_programme(client, children, budget_cents=100_000, voucher_amount_cents=10_000,
                                  funding_sources=[{"name": "ATS", "amount_cents": 100_000}])  # fmt: skip
        held = {n: [_voucher_of(client, n, big["id"]), _voucher_of(client, n, small["id"])] for n in children}
    assert all(v["amount_cents"] for pair in held.values() for v in pair)

    requests = []
    for i in range(200):
        n = children[i % 10]
        voucher = held[n][(i // 10) % 2]
        invoice = f"FT-{i % 180}"  # the last 20 repeat earlier invoices (same voucher, same amount)
        requests.append((voucher["id"], n, invoice))

    def redeem(request: tuple[str, int, str]) -> str:
        voucher_id, n, invoice = request
        with ServiceRpcClient("vouchers") as own:
            try:
                own.redeem(
                    voucher_id=voucher_id,
                    viewer=PROVIDER,
                    payload={"enrolment_id": f"e-c{n}", "invoice_ref": invoice, "amount_cents": 4_000},
                )
            except RemoteError as exc:
                return error_type(exc)
            return "ok"

    outcomes = Counter(eventlet.GreenPool(50).imap(redeem, requests))
    assert set(outcomes) <= {"ok", "Conflict"}, outcomes

    db = mongo_client[fresh_database]
    completed = list(db.redemptions.find({"status": "completed"}))
    assert len({r["_id"] for r in completed}) == len(completed)
    assert db.redemptions.count_documents({"status": "pending"}) == 0
    redeemed_by_child: dict[str, int] = defaultdict(int)
    redeemed_by_voucher: dict[str, int] = defaultdict(int)
    for r in completed:
        redeemed_by_child[r["child_id"]] += r["amount_cents"]
        redeemed_by_voucher[r["voucher_id"]] += r["amount_cents"]
    for n in children:
        cap = db.child_caps.find_one({"_id": f"{ALLIANCE}|{NOW.year}|c{n}"})
        assert cap is not None
        # At most 7 x 40 € fit the 300 € cap; each child was asked for 18 x 40 €.
        assert cap["used_cents"] == redeemed_by_child[f"c{n}"] <= 30_000
        assert cap["used_cents"] > 0
        assert sorted(cap["redemptions"]) == sorted(r["_id"] for r in completed if r["child_id"] == f"c{n}")
    for voucher in db.vouchers.find({}):
        assert voucher["balance_cents"] >= 0 and min(voucher["remaining_split"]) >= 0
        assert sum(voucher["remaining_split"]) == voucher["balance_cents"]
        assert voucher["amount_cents"] - voucher["balance_cents"] == redeemed_by_voucher[voucher["_id"]]
        assert len(voucher["redemptions"]) == len(set(voucher["redemptions"]))
    # Invoices repeated by the last 20 requests were counted once.
    assert len(completed) <= 70 and db.redemptions.count_documents({}) <= 180
    with ServiceRpcClient("vouchers") as client:
        for programme in (big, small):
            ledger = client.get_ledger(programme_id=programme["id"], viewer=STAFF)
            assert ledger["reconciles"] is True
            assert ledger["redeemed_cents"] == sum(
                r["amount_cents"] for r in completed if r["programme_id"] == programme["id"]
            )


def test_a_redemption_interrupted_half_way_is_finished_once(
    vouchers: Any, mongo_client: Any, fresh_database: str
) -> None:
    """A crash after the voucher was debited (no ledger entry, still pending): the provider's
    retry finishes it without debiting twice; one left after the cap step is finished by the
    relay timer on its own."""
    from services.vouchers.domain.ledger import split_within
    from services.vouchers.repository import Redemption, VouchersRepository, cap_key, redemption_id_for

    programme = awarded_programme(vouchers, range(1, 2))
    voucher = _voucher_of(vouchers, 1, programme["id"])
    repo = VouchersRepository(mongo_client[fresh_database])
    key = cap_key(ALLIANCE, NOW.year, "c1")

    def pending(invoice: str, amount: int, created_at: datetime) -> str:
        rid = redemption_id_for(TOTEM, invoice)
        stored = repo.insert_redemption(
            Redemption(
                id=rid,
                voucher_id=voucher["id"],
                programme_id=programme["id"],
                alliance_id=ALLIANCE,
                provider_partner_id=TOTEM,
                enrolment_id="e-c1",
                child_id="c1",
                invoice_ref=invoice,
                amount_cents=amount,
                split=[],
                status="pending",
                refusal=None,
                reversed_reason=None,
                created_at=created_at,
            )
        )
        assert stored is None
        assert repo.reserve_cap(key, 30_000, rid, amount).value == "done"
        return rid

    # Crash after step 3 (voucher debited), then the provider retries the same invoice.
    rid = pending("CRASH-1", 5_000, NOW)
    current = repo.get_voucher(voucher["id"])
    assert current is not None
    step, _ = repo.debit_voucher(voucher["id"], rid, 5_000, split_within(5_000, current.remaining_split), TOTEM, [])
    assert step.value == "done"
    retried = vouchers.redeem(
        voucher_id=voucher["id"],
        viewer=PROVIDER,
        payload={"enrolment_id": "e-c1", "invoice_ref": "CRASH-1", "amount_cents": 5_000},
    )
    assert retried["status"] == "completed"
    assert vouchers.get_voucher(voucher_id=voucher["id"], viewer=STAFF)["balance_cents"] == 25_000

    # Crash after step 2 (cap reserved) long ago: the relay timer finishes it.
    late = pending("CRASH-2", 7_000, NOW - timedelta(minutes=5))
    deadline = datetime.now(UTC) + timedelta(seconds=15)
    while repo.get_redemption(late).status != "completed":  # type: ignore[union-attr]
        assert datetime.now(UTC) < deadline, "the relay timer did not finish the redemption"
        eventlet.sleep(0.5)
    assert vouchers.get_voucher(voucher_id=voucher["id"], viewer=STAFF)["balance_cents"] == 18_000
    assert repo.cap_used(key) == 12_000
    ledger = vouchers.get_ledger(programme_id=programme["id"], viewer=STAFF)
    assert ledger["redeemed_cents"] == 12_000 and ledger["reconciles"] is True
