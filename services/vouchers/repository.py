"""Storage of the vouchers service: the only code that knows its MongoDB layout.

Collections::

    programmes        {_id, alliance_id, spec: <ProgrammeSpec JSON>, status, history, awarded_cents,
                       ranking_run, ranked_awards_cents, version, created_at, _outbox, _outbox_pending}
    sequences         {_id: programme_id, value}                      protocol numbers ($inc)
    application_keys  {_id: "<programme>|<child>", application_id}     one live application per child
    applications      {_id, programme_id, alliance_id, protocol, sequence, submitted_at, applicant_subject,
                       household_id, child_id, snapshot, isee_cents (copy for ranking), cf_masked,
                       disability_priority, no_double_funding,
                       attachments, status, automatic_reasons, review_note, reviewed_by, score, breakdown,
                       _outbox, _outbox_pending}
    rankings          {_id: "<run>:<chunk>", run_id, programme_id, chunk, total,
                       rows: ["position␟application_id␟protocol␟cf_masked␟score␟placed_by␟outcome␟award", ...]}
                      a ranking run in chunks of 1,000 rows: 50,000 applications are 50 documents,
                      read by ``_id`` page by page
    vouchers          {_id: uuid5(application), code (unique), programme_id, alliance_id, application_id,
                       child_id, household_id, holder_subject, amount_cents, balance_cents,
                       split (award per funding source), remaining_split (balance per source),
                       redemption_splits: {rid: [per source]},
                       valid_from, valid_until, status, redemptions: [rid], providers: [partner],
                       service_types, cap_year, released_cents?, _outbox, _outbox_pending}
    child_caps        {_id: "<alliance>|<year>|<child>", cap_cents, used_cents, redemptions: [rid]}
    redemptions       {_id: rid (from provider + invoice ref), voucher_id, programme_id, alliance_id,
                       provider_partner_id, enrolment_id, child_id, invoice_ref, amount_cents, split,
                       status, refusal, reversed_reason, created_at}
    ledger            {_id: "<kind>:<ref>", programme_id, kind, amount_cents, split, ref, at}
                      award:<programme> (one per award), redemption:<rid>, reversal:<rid>,
                      expiry_release:<voucher>

Every invariant rests on one atomic single-document write (no transactions):
a voucher is debited with ``{"balance_cents": {"$gte": amount}, "remaining_split.<i>": {"$gte": part_i},
"redemptions": {"$ne": rid}}`` so neither it nor any funding source's share of it goes below
zero and a redemption id is applied once; a child's yearly
cap is one document per alliance, year and child, reserved the same way; an
invoice reference is the ``_id`` of its redemption (unique); ledger entries have
deterministic ``_id``s, so writing one twice is a no-op. The methods answer which
of these outcomes happened and the use cases order and compensate them.
"""

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from pymongo import ASCENDING, ReturnDocument, UpdateOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

from conciliare.chassis.outbox import Dispatch, OutboxRelay, attach_events, push_events
from conciliare.contracts.common import IntegrationEvent
from conciliare.contracts.taxonomy import ServiceType
from conciliare.contracts.vouchers import (
    ApplicantSnapshot,
    ApplicationStatus,
    AttachmentRef,
    CriterionScore,
    LedgerKind,
    Outcome,
    ProgrammeSpec,
    ProgrammeStatus,
    Reason,
    StatusChange,
    TieBreak,
    VoucherStatus,
)
from conciliare.errors import Conflict
from services.vouchers.domain.ledger import Entry, VoucherTotals

Document = dict[str, Any]
PROGRAMMES = "programmes"
APPLICATIONS = "applications"
VOUCHERS = "vouchers"
OUTBOX_COLLECTIONS = (PROGRAMMES, APPLICATIONS, VOUCHERS)
HIDDEN = {"_outbox": 0, "_outbox_pending": 0}
_VOUCHER_NAMESPACE = uuid.UUID("6f17c4ee-ae76-788c-8f2a-0c0a51f1a7e2")
_BATCH = 5_000
RANKING_CHUNK = 1_000


def stored_time(moment: datetime) -> datetime:
    """``moment`` as MongoDB keeps it (milliseconds), so an answer equals later reads."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def voucher_id_for(application_id: str) -> str:
    """One voucher per application, whatever the number of award attempts."""
    return uuid.uuid5(_VOUCHER_NAMESPACE, application_id).hex


def redemption_id_for(provider_partner_id: str, invoice_ref: str) -> str:
    """An invoice reference of a provider names one redemption: it counts once."""
    key = f"{provider_partner_id}|{' '.join(invoice_ref.split()).upper()}"
    return uuid.uuid5(_VOUCHER_NAMESPACE, key).hex


def cap_key(alliance_id: str, year: int, child_id: str) -> str:
    return f"{alliance_id}|{year}|{child_id}"


# --- records ----------------------------------------------------------------------


@dataclass(frozen=True)
class Programme:
    id: str
    alliance_id: str
    spec: ProgrammeSpec
    status: ProgrammeStatus
    history: list[StatusChange]
    awarded_cents: int
    ranking_run: str | None
    ranked_awards_cents: int
    version: int
    created_at: datetime


@dataclass(frozen=True)
class Application:
    id: str
    programme_id: str
    alliance_id: str
    protocol: str
    sequence: int
    submitted_at: datetime
    applicant_subject: str
    household_id: str
    child_id: str
    snapshot: ApplicantSnapshot
    disability_priority: bool
    claims_disability_priority: bool
    no_double_funding: bool
    attachments: list[AttachmentRef]
    status: ApplicationStatus
    automatic_reasons: list[Reason]
    review_note: str | None
    reviewed_by: str | None
    score: int
    breakdown: list[CriterionScore]
    cf_masked: str


@dataclass(frozen=True)
class Rankable:
    """An eligible application, with only what the ranking needs."""

    application_id: str
    sequence: int
    submitted_at: datetime
    isee_cents: int | None
    score: int
    cf_masked: str


@dataclass(frozen=True)
class Holder:
    """Whose voucher an awarded application becomes."""

    child_id: str
    household_id: str
    applicant_subject: str


@dataclass(frozen=True)
class PendingReview:
    application_id: str
    protocol: str
    applicant_subject: str
    automatic_ok: bool


@dataclass(frozen=True)
class RankedRow:
    run_id: str
    programme_id: str
    position: int
    application_id: str
    protocol: str
    cf_masked: str
    score: int
    placed_by: TieBreak | None
    outcome: Outcome
    award_cents: int


@dataclass(frozen=True)
class Voucher:
    id: str
    code: str
    programme_id: str
    alliance_id: str
    application_id: str
    child_id: str
    household_id: str
    holder_subject: str
    amount_cents: int
    balance_cents: int
    split: list[int]
    remaining_split: list[int]
    redemption_splits: dict[str, list[int]]
    valid_from: date
    valid_until: date
    status: VoucherStatus
    service_types: list[ServiceType]
    cap_year: int
    providers: list[str]
    redemptions: list[str]


@dataclass(frozen=True)
class Redemption:
    id: str
    voucher_id: str
    programme_id: str
    alliance_id: str
    provider_partner_id: str
    enrolment_id: str
    child_id: str
    invoice_ref: str
    amount_cents: int
    split: list[int]
    status: str
    refusal: str | None
    reversed_reason: str | None
    created_at: datetime


@dataclass(frozen=True)
class Scope:
    """What a viewer may list: every field that is set narrows the list."""

    alliance_ids: list[str] | None = None
    holder_subject: str | None = None
    provider_partner_id: str | None = None


class Step(StrEnum):
    """What one guarded write did."""

    DONE = "done"  # applied now
    ALREADY = "already"  # applied earlier by this same redemption id
    REFUSED = "refused"  # the guard refused it (cap, balance, status)


# --- mapping ----------------------------------------------------------------------


def _programme(doc: Document) -> Programme:
    return Programme(
        id=doc["_id"],
        alliance_id=doc["alliance_id"],
        spec=ProgrammeSpec.model_validate(doc["spec"]),
        status=ProgrammeStatus(doc["status"]),
        history=[StatusChange.model_validate(h) for h in doc["history"]],
        awarded_cents=doc.get("awarded_cents", 0),
        ranking_run=doc.get("ranking_run"),
        ranked_awards_cents=doc.get("ranked_awards_cents", 0),
        version=doc["version"],
        created_at=doc["created_at"],
    )


def _application(doc: Document) -> Application:
    return Application(
        id=doc["_id"],
        programme_id=doc["programme_id"],
        alliance_id=doc["alliance_id"],
        protocol=doc["protocol"],
        sequence=doc["sequence"],
        submitted_at=doc["submitted_at"],
        applicant_subject=doc["applicant_subject"],
        household_id=doc["household_id"],
        child_id=doc["child_id"],
        snapshot=ApplicantSnapshot.model_validate(doc["snapshot"]),
        disability_priority=doc["disability_priority"],
        claims_disability_priority=doc["claims_disability_priority"],
        no_double_funding=doc["no_double_funding"],
        attachments=[AttachmentRef.model_validate(a) for a in doc["attachments"]],
        status=ApplicationStatus(doc["status"]),
        automatic_reasons=[Reason.model_validate(r) for r in doc["automatic_reasons"]],
        review_note=doc.get("review_note"),
        reviewed_by=doc.get("reviewed_by"),
        score=doc["score"],
        breakdown=[CriterionScore.model_validate(b) for b in doc["breakdown"]],
        cf_masked=doc.get("cf_masked", ""),
    )


def _application_doc(app: Application) -> Document:
    return {
        "_id": app.id,
        "programme_id": app.programme_id,
        "alliance_id": app.alliance_id,
        "protocol": app.protocol,
        "sequence": app.sequence,
        "submitted_at": app.submitted_at,
        "applicant_subject": app.applicant_subject,
        "household_id": app.household_id,
        "child_id": app.child_id,
        "snapshot": app.snapshot.model_dump(mode="json"),
        "isee_cents": app.snapshot.isee_cents,
        "cf_masked": app.cf_masked,
        "disability_priority": app.disability_priority,
        "claims_disability_priority": app.claims_disability_priority,
        "no_double_funding": app.no_double_funding,
        "attachments": [a.model_dump(mode="json") for a in app.attachments],
        "status": app.status.value,
        "automatic_reasons": [r.model_dump() for r in app.automatic_reasons],
        "review_note": app.review_note,
        "reviewed_by": app.reviewed_by,
        "score": app.score,
        "breakdown": [b.model_dump(mode="json") for b in app.breakdown],
    }


_TIE_BREAKS = {t.value: t for t in TieBreak}
_OUTCOMES = {o.value: o for o in Outcome}


_SEPARATOR = "\x1f"  # ASCII unit separator: in no id, protocol or masked code


def _row(run_id: str, programme_id: str, line: str) -> RankedRow:
    position, application_id, protocol, cf_masked, score, placed_by, outcome, award = line.split(_SEPARATOR)
    return RankedRow(
        run_id=run_id,
        programme_id=programme_id,
        position=int(position),
        application_id=application_id,
        protocol=protocol,
        cf_masked=cf_masked,
        score=int(score),
        placed_by=_TIE_BREAKS[placed_by] if placed_by else None,
        outcome=_OUTCOMES[outcome],
        award_cents=int(award),
    )


def _line(row: RankedRow) -> str:
    """One row as one string: a ranking of 50,000 rows is 50,000 strings, not 500,000 values."""
    return _SEPARATOR.join(
        (
            str(row.position),
            row.application_id,
            row.protocol,
            row.cf_masked,
            str(row.score),
            row.placed_by.value if row.placed_by else "",
            row.outcome.value,
            str(row.award_cents),
        )
    )


def _voucher(doc: Document) -> Voucher:
    return Voucher(
        id=doc["_id"],
        code=doc["code"],
        programme_id=doc["programme_id"],
        alliance_id=doc["alliance_id"],
        application_id=doc["application_id"],
        child_id=doc["child_id"],
        household_id=doc["household_id"],
        holder_subject=doc["holder_subject"],
        amount_cents=doc["amount_cents"],
        balance_cents=doc["balance_cents"],
        split=list(doc["split"]),
        remaining_split=list(doc["remaining_split"]),
        redemption_splits={k: list(v) for k, v in doc.get("redemption_splits", {}).items()},
        valid_from=date.fromisoformat(doc["valid_from"]),
        valid_until=date.fromisoformat(doc["valid_until"]),
        status=VoucherStatus(doc["status"]),
        service_types=[ServiceType(t) for t in doc["service_types"]],
        cap_year=doc["cap_year"],
        providers=list(doc.get("providers", [])),
        redemptions=list(doc.get("redemptions", [])),
    )


def _voucher_doc(voucher: Voucher) -> Document:
    return {
        "_id": voucher.id,
        "code": voucher.code,
        "programme_id": voucher.programme_id,
        "alliance_id": voucher.alliance_id,
        "application_id": voucher.application_id,
        "child_id": voucher.child_id,
        "household_id": voucher.household_id,
        "holder_subject": voucher.holder_subject,
        "amount_cents": voucher.amount_cents,
        "balance_cents": voucher.balance_cents,
        "split": voucher.split,
        "remaining_split": voucher.remaining_split,
        "redemption_splits": voucher.redemption_splits,
        "valid_from": voucher.valid_from.isoformat(),
        "valid_until": voucher.valid_until.isoformat(),
        "status": voucher.status.value,
        "service_types": [t.value for t in voucher.service_types],
        "cap_year": voucher.cap_year,
        "providers": voucher.providers,
        "redemptions": voucher.redemptions,
    }


def _redemption(doc: Document) -> Redemption:
    return Redemption(
        id=doc["_id"],
        voucher_id=doc["voucher_id"],
        programme_id=doc["programme_id"],
        alliance_id=doc["alliance_id"],
        provider_partner_id=doc["provider_partner_id"],
        enrolment_id=doc["enrolment_id"],
        child_id=doc["child_id"],
        invoice_ref=doc["invoice_ref"],
        amount_cents=doc["amount_cents"],
        split=list(doc["split"]),
        status=doc["status"],
        refusal=doc.get("refusal"),
        reversed_reason=doc.get("reversed_reason"),
        created_at=doc["created_at"],
    )


def ensure_indexes(db: Database[Document]) -> None:
    db.vouchers.create_index("code", unique=True)
    db.applications.create_index([("programme_id", ASCENDING), ("sequence", ASCENDING)])
    db.vouchers.create_index("holder_subject")
    db.redemptions.create_index("voucher_id")
    db.ledger.create_index("programme_id")
    OutboxRelay(db, OUTBOX_COLLECTIONS).ensure_indexes()


class VouchersRepository:
    def __init__(self, db: Database[Document]) -> None:
        self.db = db
        self.outbox = OutboxRelay(db, OUTBOX_COLLECTIONS)

    # --- programmes -------------------------------------------------------------

    def insert_programme(self, programme: Programme) -> None:
        self.db.programmes.insert_one(
            {
                "_id": programme.id,
                "alliance_id": programme.alliance_id,
                "spec": programme.spec.model_dump(mode="json"),
                "status": programme.status.value,
                "history": [h.model_dump() for h in programme.history],
                "awarded_cents": programme.awarded_cents,
                "ranking_run": programme.ranking_run,
                "ranked_awards_cents": programme.ranked_awards_cents,
                "version": programme.version,
                "created_at": programme.created_at,
            }
        )

    def get_programme(self, programme_id: str) -> Programme | None:
        doc = self.db.programmes.find_one({"_id": programme_id}, HIDDEN)
        return None if doc is None else _programme(doc)

    def find_programmes(
        self, alliance_ids: list[str] | None, status: str | None, exclude_draft: bool, limit: int, offset: int
    ) -> tuple[list[Programme], int]:
        query: Document = {}
        if alliance_ids is not None:
            query["alliance_id"] = {"$in": alliance_ids}
        if status:
            query["status"] = status
        elif exclude_draft:
            query["status"] = {"$ne": ProgrammeStatus.DRAFT.value}
        docs = list(self.db.programmes.find(query, HIDDEN).sort("created_at", ASCENDING))
        return [_programme(d) for d in docs[offset : offset + limit]], len(docs)

    def save_programme(
        self,
        programme_id: str,
        expected_version: int,
        status: ProgrammeStatus,
        change: StatusChange,
        events: Sequence[IntegrationEvent],
        extra: Document | None = None,
    ) -> bool:
        """A status change with its audit record and events, if still at ``expected_version``."""
        update = push_events(
            {
                "$set": {"status": status.value, **(extra or {})},
                "$push": {"history": change.model_dump()},
                "$inc": {"version": 1},
            },
            events,
        )
        result = self.db.programmes.update_one({"_id": programme_id, "version": expected_version}, update)
        return result.matched_count == 1

    def next_sequence(self, programme_id: str) -> int:
        doc = self.db.sequences.find_one_and_update(
            {"_id": programme_id}, {"$inc": {"value": 1}}, upsert=True, return_document=ReturnDocument.AFTER
        )
        assert doc is not None  # upserted
        return int(doc["value"])

    # --- applications -----------------------------------------------------------------

    def claim_child(self, programme_id: str, child_id: str, application_id: str) -> bool:
        """Reserve the one live application of a child in a programme; False if taken."""
        try:
            self.db.application_keys.insert_one({"_id": f"{programme_id}|{child_id}", "application_id": application_id})
        except DuplicateKeyError:
            return False
        return True

    def release_child(self, programme_id: str, child_id: str, application_id: str) -> None:
        self.db.application_keys.delete_one({"_id": f"{programme_id}|{child_id}", "application_id": application_id})

    def insert_application(self, application: Application, events: Sequence[IntegrationEvent]) -> None:
        self.db.applications.insert_one(attach_events(_application_doc(application), events))

    def insert_applications(self, applications: Sequence[Application]) -> None:
        """Bulk load (benchmarks, demo data): keys and applications, no events."""
        for start in range(0, len(applications), _BATCH):
            chunk = applications[start : start + _BATCH]
            self.db.application_keys.insert_many(
                [{"_id": f"{a.programme_id}|{a.child_id}", "application_id": a.id} for a in chunk], ordered=False
            )
            self.db.applications.insert_many([_application_doc(a) for a in chunk], ordered=False)

    def get_application(self, application_id: str) -> Application | None:
        doc = self.db.applications.find_one({"_id": application_id}, HIDDEN)
        return None if doc is None else _application(doc)

    def find_applications(
        self, programme_id: str, subject: str | None, status: str | None, limit: int, offset: int
    ) -> tuple[list[Application], int]:
        query: Document = {"programme_id": programme_id}
        if subject is not None:
            query["applicant_subject"] = subject
        if status:
            query["status"] = status
        total = self.db.applications.count_documents(query)
        cursor = self.db.applications.find(query, HIDDEN).sort("sequence", ASCENDING).skip(offset).limit(limit)
        return [_application(d) for d in cursor], total

    def rankable(self, programme_id: str) -> tuple[list[Rankable], int]:
        """What ranking needs of the eligible applications of a programme, and how many
        are still to be reviewed: one scan, a small projection, filtered here."""
        projection = {"sequence": 1, "submitted_at": 1, "isee_cents": 1, "score": 1, "cf_masked": 1, "status": 1}
        eligible: list[Rankable] = []
        unreviewed = 0
        for d in self.db.applications.find({"programme_id": programme_id}, projection, batch_size=10_000):
            if d["status"] == ApplicationStatus.ELIGIBLE.value:
                eligible.append(
                    Rankable(
                        d["_id"], d["sequence"], d["submitted_at"], d.get("isee_cents"), d["score"], d["cf_masked"]
                    )
                )
            elif d["status"] == ApplicationStatus.SUBMITTED.value:
                unreviewed += 1
        return eligible, unreviewed

    def holders(self, programme_id: str, application_ids: list[str]) -> dict[str, Holder]:
        """Child, household and family of some applications of a programme.

        A few by ``_id``; many by one scan of the programme (mongo-java-server answers a
        long ``$in`` by comparing every document with every value).
        """
        projection = {"child_id": 1, "household_id": 1, "applicant_subject": 1}
        wanted = set(application_ids)
        query: Document = (
            {"_id": {"$in": application_ids}} if len(application_ids) <= 200 else {"programme_id": programme_id}
        )
        found = self.db.applications.find(query, projection, batch_size=10_000)
        return {
            d["_id"]: Holder(d["child_id"], d["household_id"], d["applicant_subject"])
            for d in found
            if d["_id"] in wanted
        }

    def breakdowns(self, application_ids: list[str]) -> dict[str, list[Document]]:
        """The score breakdown of some applications (a page of the ranking, for staff)."""
        found = self.db.applications.find({"_id": {"$in": application_ids}}, {"breakdown": 1})
        return {d["_id"]: d["breakdown"] for d in found}

    def pending_reviews(self, programme_id: str) -> list[PendingReview]:
        query = {"programme_id": programme_id, "status": ApplicationStatus.SUBMITTED.value}
        found = self.db.applications.find(query, {"protocol": 1, "applicant_subject": 1, "automatic_reasons": 1})
        return [
            PendingReview(d["_id"], d["protocol"], d["applicant_subject"], not d["automatic_reasons"]) for d in found
        ]

    def save_review(
        self,
        application_id: str,
        expected_status: ApplicationStatus,
        status: ApplicationStatus,
        note: str | None,
        by: str,
        events: Sequence[IntegrationEvent],
    ) -> bool:
        update = push_events({"$set": {"status": status.value, "review_note": note, "reviewed_by": by}}, events)
        result = self.db.applications.update_one({"_id": application_id, "status": expected_status.value}, update)
        return result.matched_count == 1

    def confirm_reviews(self, decisions: Sequence[tuple[str, ApplicationStatus, IntegrationEvent]], by: str) -> int:
        """Staff confirm the automatic results of many submitted applications at once."""
        changed = 0
        for start in range(0, len(decisions), _BATCH):
            operations = [
                UpdateOne(
                    {"_id": app_id, "status": ApplicationStatus.SUBMITTED.value},
                    push_events({"$set": {"status": status.value, "reviewed_by": by}}, [event]),
                )
                for app_id, status, event in decisions[start : start + _BATCH]
            ]
            changed += self.db.applications.bulk_write(operations, ordered=False).modified_count
        return changed

    # --- ranking ----------------------------------------------------------------------

    def insert_ranking(self, rows: Sequence[RankedRow]) -> None:
        """Store a ranking run (rows in position order) in chunks; nothing points at it yet."""
        if not rows:
            return
        run_id, programme_id = rows[0].run_id, rows[0].programme_id
        docs = [
            {
                "_id": f"{run_id}:{start // RANKING_CHUNK:05d}",
                "run_id": run_id,
                "programme_id": programme_id,
                "chunk": start // RANKING_CHUNK,
                "total": len(rows),
                "rows": [_line(row) for row in rows[start : start + RANKING_CHUNK]],
            }
            for start in range(0, len(rows), RANKING_CHUNK)
        ]
        for start in range(0, len(docs), 10):
            self.db.rankings.insert_many(docs[start : start + 10], ordered=False)

    def ranking(
        self, run_id: str, limit: int | None = None, offset: int = 0, awarded_only: bool = False
    ) -> tuple[list[RankedRow], int]:
        """A page of a ranking run (all of it without ``limit``) and its size."""
        if limit is None:
            docs = sorted(self.db.rankings.find({"run_id": run_id}), key=lambda d: d["chunk"])
        else:
            first, last = offset // RANKING_CHUNK, (offset + max(limit, 1) - 1) // RANKING_CHUNK
            ids = [f"{run_id}:{chunk:05d}" for chunk in range(first, last + 1)]
            docs = sorted(self.db.rankings.find({"_id": {"$in": ids}}), key=lambda d: d["chunk"])
        if not docs:
            return [], self.ranking_size(run_id)
        base = docs[0]["chunk"] * RANKING_CHUNK
        lines = [line for doc in docs for line in doc["rows"]]
        chosen = lines[offset - base :] if limit is None else lines[offset - base : offset - base + limit]
        if awarded_only:
            chosen = [line for line in chosen if not line.endswith(_SEPARATOR + "0")]
        return [_row(run_id, docs[0]["programme_id"], c) for c in chosen], int(docs[0]["total"])

    def ranking_size(self, run_id: str) -> int:
        doc = self.db.rankings.find_one({"_id": f"{run_id}:00000"}, {"total": 1})
        return 0 if doc is None else int(doc["total"])

    def awarded_rows(self, run_id: str) -> list[RankedRow]:
        """The rows of a ranking that get a voucher, in ranking order."""
        rows, _ = self.ranking(run_id, awarded_only=True)
        return rows

    def drop_other_runs(self, programme_id: str, keep_run: str) -> None:
        self.db.rankings.delete_many({"programme_id": programme_id, "run_id": {"$ne": keep_run}})

    # --- vouchers ---------------------------------------------------------------------

    def insert_vouchers(self, vouchers: Sequence[Voucher], events: dict[str, list[IntegrationEvent]]) -> list[str]:
        """Insert vouchers not stored yet; answer the ids whose *code* collided (to retry with new codes).

        A voucher already stored (same ``_id``: a repeated award) is left as it is.
        """
        collided: list[str] = []
        docs = [attach_events(_voucher_doc(v), events.get(v.id, [])) for v in vouchers]
        for start in range(0, len(docs), _BATCH):
            try:
                self.db.vouchers.insert_many(docs[start : start + _BATCH], ordered=False)
            except BulkWriteError as exc:
                for error in exc.details.get("writeErrors", []):
                    if error.get("code") != 11000:
                        raise
                    key = error.get("keyPattern") or {}
                    if "code" in key or "code" in str(error.get("errmsg", "")).split("index:")[-1][:40]:
                        collided.append(str(error["op"]["_id"]))
        return collided

    def get_voucher(self, voucher_id: str) -> Voucher | None:
        doc = self.db.vouchers.find_one({"_id": voucher_id}, HIDDEN)
        return None if doc is None else _voucher(doc)

    def voucher_by_code(self, code: str) -> Voucher | None:
        doc = self.db.vouchers.find_one({"code": code}, HIDDEN)
        return None if doc is None else _voucher(doc)

    def find_vouchers(
        self, scope: Scope, programme_id: str | None, status: str | None, limit: int, offset: int
    ) -> tuple[list[Voucher], int]:
        query: Document = {}
        if scope.alliance_ids is not None:
            query["alliance_id"] = {"$in": scope.alliance_ids}
        if scope.holder_subject is not None:
            query["holder_subject"] = scope.holder_subject
        if scope.provider_partner_id is not None:
            query["providers"] = scope.provider_partner_id
        if programme_id:
            query["programme_id"] = programme_id
        if status:
            query["status"] = status
        total = self.db.vouchers.count_documents(query)
        cursor = self.db.vouchers.find(query, HIDDEN).sort("_id", ASCENDING).skip(offset).limit(limit)
        return [_voucher(d) for d in cursor], total

    def voucher_totals(self, programme_id: str) -> VoucherTotals:
        rows = list(
            self.db.vouchers.aggregate(
                [
                    {"$match": {"programme_id": programme_id}},
                    {
                        "$group": {
                            "_id": None,
                            "amount": {"$sum": "$amount_cents"},
                            "balance": {"$sum": "$balance_cents"},
                            "released": {"$sum": "$released_cents"},
                        }
                    },
                ]
            )
        )
        if not rows:
            return VoucherTotals(0, 0, 0)
        return VoucherTotals(int(rows[0]["amount"]), int(rows[0]["balance"]), int(rows[0]["released"] or 0))

    def debit_voucher(
        self,
        voucher_id: str,
        redemption_id: str,
        amount_cents: int,
        split: Sequence[int],
        provider: str,
        events: Sequence[IntegrationEvent],
    ) -> tuple[Step, Voucher | None]:
        """Take ``amount_cents`` (``split`` per source) from an active voucher that has enough
        in all and in each source, once per redemption id."""
        guard: Document = {
            "_id": voucher_id,
            "status": VoucherStatus.ACTIVE.value,
            "balance_cents": {"$gte": amount_cents},
            "redemptions": {"$ne": redemption_id},
        }
        increments: Document = {"balance_cents": -amount_cents}
        for index, part in enumerate(split):
            guard[f"remaining_split.{index}"] = {"$gte": part}
            increments[f"remaining_split.{index}"] = -part
        update = push_events(
            {
                "$inc": increments,
                "$push": {"redemptions": redemption_id},
                "$addToSet": {"providers": provider},
                "$set": {f"redemption_splits.{redemption_id}": list(split)},
            },
            events,
        )
        doc = self.db.vouchers.find_one_and_update(
            guard, update, projection=HIDDEN, return_document=ReturnDocument.AFTER
        )
        if doc is not None:
            if doc["balance_cents"] == 0:
                self.db.vouchers.update_one(
                    {"_id": voucher_id, "status": VoucherStatus.ACTIVE.value, "balance_cents": 0},
                    {"$set": {"status": VoucherStatus.EXHAUSTED.value}},
                )
            return Step.DONE, _voucher(doc)
        current = self.get_voucher(voucher_id)
        if current is not None and redemption_id in current.redemptions:
            return Step.ALREADY, current
        return Step.REFUSED, current

    def credit_voucher(self, voucher_id: str, redemption_id: str, amount_cents: int, split: Sequence[int]) -> Step:
        """Give back a reversed redemption to a voucher still in use (idempotent by id)."""
        increments: Document = {"balance_cents": amount_cents}
        for index, part in enumerate(split):
            increments[f"remaining_split.{index}"] = part
        result = self.db.vouchers.update_one(
            {
                "_id": voucher_id,
                "redemptions": redemption_id,
                "status": {"$in": [VoucherStatus.ACTIVE.value, VoucherStatus.EXHAUSTED.value]},
            },
            {
                "$inc": increments,
                "$pull": {"redemptions": redemption_id},
                "$unset": {f"redemption_splits.{redemption_id}": ""},
                "$set": {"status": VoucherStatus.ACTIVE.value},
            },
        )
        if result.matched_count == 1:
            return Step.DONE
        current = self.get_voucher(voucher_id)
        if current is not None and redemption_id not in current.redemptions:
            return Step.ALREADY
        return Step.REFUSED

    def expire_voucher(self, voucher_id: str, events_for: Any) -> tuple[int, list[int]] | None:
        """Close a voucher to redemptions; what it released, in all and per source (None: not expired)."""
        self.db.vouchers.update_one(
            {"_id": voucher_id, "status": {"$in": [VoucherStatus.ACTIVE.value, VoucherStatus.EXHAUSTED.value]}},
            {"$set": {"status": VoucherStatus.EXPIRED.value}},
        )
        doc = self.db.vouchers.find_one(
            {"_id": voucher_id}, {"status": 1, "balance_cents": 1, "released_cents": 1, "remaining_split": 1}
        )
        if doc is None or doc["status"] != VoucherStatus.EXPIRED.value:
            return None
        # Once expired nothing debits the voucher any more: its balance is final.
        released = int(doc["balance_cents"])
        if "released_cents" in doc:
            return released, list(doc["remaining_split"])
        self.db.vouchers.update_one(
            {"_id": voucher_id, "released_cents": {"$exists": False}},
            push_events({"$set": {"released_cents": released}}, events_for(released)),
        )
        return released, list(doc["remaining_split"])

    def expirable_voucher_ids(self, before: date) -> list[str]:
        query = {
            "status": {"$in": [VoucherStatus.ACTIVE.value, VoucherStatus.EXHAUSTED.value]},
            "valid_until": {"$lt": before.isoformat()},
        }
        return [d["_id"] for d in self.db.vouchers.find(query, {"_id": 1})]

    # --- child caps -------------------------------------------------------------------

    def reserve_cap(self, key: str, cap_cents: int, redemption_id: str, amount_cents: int) -> Step:
        """Count ``amount_cents`` against a child's yearly cap, once per redemption id."""
        try:
            self.db.child_caps.update_one(
                {"_id": key},
                {"$setOnInsert": {"used_cents": 0, "cap_cents": cap_cents, "redemptions": []}},
                upsert=True,
            )
        except DuplicateKeyError:
            pass  # a concurrent first reservation created it
        result = self.db.child_caps.update_one(
            {"_id": key, "used_cents": {"$lte": cap_cents - amount_cents}, "redemptions": {"$ne": redemption_id}},
            {"$inc": {"used_cents": amount_cents}, "$push": {"redemptions": redemption_id}},
        )
        if result.matched_count == 1:
            return Step.DONE
        doc = self.db.child_caps.find_one({"_id": key}, {"redemptions": 1})
        if doc is not None and redemption_id in doc.get("redemptions", []):
            return Step.ALREADY
        return Step.REFUSED

    def release_cap(self, key: str, redemption_id: str, amount_cents: int) -> None:
        """Undo a reservation (compensation or reversal); a no-op if it is not there."""
        self.db.child_caps.update_one(
            {"_id": key, "redemptions": redemption_id},
            {"$inc": {"used_cents": -amount_cents}, "$pull": {"redemptions": redemption_id}},
        )

    def cap_used(self, key: str) -> int:
        doc = self.db.child_caps.find_one({"_id": key}, {"used_cents": 1})
        return 0 if doc is None else int(doc["used_cents"])

    # --- redemptions ------------------------------------------------------------------

    def insert_redemption(self, redemption: Redemption) -> Redemption | None:
        """Store a new pending redemption; answer the one already stored under its id, if any."""
        doc: Document = {
            "_id": redemption.id,
            "voucher_id": redemption.voucher_id,
            "programme_id": redemption.programme_id,
            "alliance_id": redemption.alliance_id,
            "provider_partner_id": redemption.provider_partner_id,
            "enrolment_id": redemption.enrolment_id,
            "child_id": redemption.child_id,
            "invoice_ref": redemption.invoice_ref,
            "amount_cents": redemption.amount_cents,
            "split": redemption.split,
            "status": redemption.status,
            "refusal": None,
            "reversed_reason": None,
            "created_at": redemption.created_at,
        }
        try:
            self.db.redemptions.insert_one(doc)
        except DuplicateKeyError:
            return self.get_redemption(redemption.id)
        return None

    def get_redemption(self, redemption_id: str) -> Redemption | None:
        doc = self.db.redemptions.find_one({"_id": redemption_id})
        return None if doc is None else _redemption(doc)

    def set_redemption_status(self, redemption_id: str, expected: Iterable[str], status: str, **fields: Any) -> bool:
        result = self.db.redemptions.update_one(
            {"_id": redemption_id, "status": {"$in": list(expected)}}, {"$set": {"status": status, **fields}}
        )
        return result.matched_count == 1

    def find_redemptions(
        self, scope: Scope, voucher_id: str | None, programme_id: str | None, limit: int | None, offset: int
    ) -> tuple[list[Redemption], int]:
        query: Document = {}
        if scope.alliance_ids is not None:
            query["alliance_id"] = {"$in": scope.alliance_ids}
        if scope.provider_partner_id is not None:
            query["provider_partner_id"] = scope.provider_partner_id
        if voucher_id:
            query["voucher_id"] = voucher_id
        if programme_id:
            query["programme_id"] = programme_id
        docs = list(self.db.redemptions.find(query).sort("created_at", ASCENDING))
        chosen = docs[offset:] if limit is None else docs[offset : offset + limit]
        return [_redemption(d) for d in chosen], len(docs)

    def stale_pending_redemptions(self, before: datetime) -> list[Redemption]:
        docs = self.db.redemptions.find({"status": {"$in": ["pending", "reversing"]}, "created_at": {"$lt": before}})
        return [_redemption(d) for d in docs]

    # --- ledger -----------------------------------------------------------------------

    def record(
        self, programme_id: str, kind: LedgerKind, ref: str, amount: int, split: list[int], at: datetime
    ) -> None:
        """Write one ledger entry; writing it again is a no-op (its ``_id`` is its cause)."""
        try:
            self.db.ledger.insert_one(
                {
                    "_id": f"{kind.value}:{ref}",
                    "programme_id": programme_id,
                    "kind": kind.value,
                    "ref": ref,
                    "amount_cents": amount,
                    "split": split,
                    "at": at,
                }
            )
        except DuplicateKeyError:
            pass

    def ledger_entries(self, programme_id: str) -> list[Entry]:
        docs = self.db.ledger.find({"programme_id": programme_id}, {"kind": 1, "amount_cents": 1, "split": 1})
        return [Entry(LedgerKind(d["kind"]), int(d["amount_cents"]), tuple(d["split"])) for d in docs]

    def ledger_rows(self, programme_id: str) -> list[Document]:
        return list(self.db.ledger.find({"programme_id": programme_id}).sort("at", ASCENDING))

    # --- outbox -----------------------------------------------------------------------

    def publish(self, dispatch: Dispatch, collection: str, document_id: str) -> int:
        return self.outbox.publish_pending(dispatch, collection=collection, document_id=document_id)

    def publish_all(self, dispatch: Dispatch, batch: int = 500) -> int:
        return self.outbox.publish_pending(dispatch, batch=batch)


def duplicate_application() -> Conflict:
    return Conflict("Esiste già una domanda per questo minore in questo bando: ritirala prima di ripresentarla.")
