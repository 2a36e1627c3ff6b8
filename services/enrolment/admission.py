"""Deciding the enrolment requests the gateway accepted, in their order of arrival.

The gateway acknowledges a request once the broker holds it (a persistent message
in one of the partition queues, ``conciliare.contracts.enrolment_requests``). Each
partition has one active consumer across all instances; it hands this module its
messages in queue order, a batch at a time, and acknowledges them only after
``decide_requests`` returned. For each offering in the batch:

1. requests already decided (known to the offering's seats, or refused earlier) are
   skipped: a redelivered message, or the same request sent twice, decides nothing;
2. each request is checked (every refusal reason at once, with the household's
   data only this service holds); a child's overlapping requests are settled by the
   child's own list of enrolments (an atomic ``$push``, first listed wins);
3. the eligible and the refused requests about a known child are stored as
   enrolments, then decided in one conditional write of the offering's seats, in
   arrival order, with their events (``seating.decide``);
4. a request naming a child that is not the caller's, or an unknown offering, is
   stored as a ``RefusedRequest`` and its event sent.
A crash anywhere leaves the messages unacknowledged: the next active consumer gets
them again, and steps 1-3 make that harmless.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from conciliare.contracts.enrolment import EnrolmentRefused, RefusalReason
from conciliare.contracts.enrolment_requests import EnrolmentRequested
from conciliare.errors import NotFound, validation_failed_from_pydantic
from services.enrolment import access, projections, seating
from services.enrolment.domain import (
    ROME,
    ChildNeeds,
    EnrolmentRequest,
    OfferingProjection,
    Territory,
    check_eligibility,
    mask_codice_fiscale,
)
from services.enrolment.enrolments import active_overlapping
from services.enrolment.ports import Repository, Runtime
from services.enrolment.records import (
    AuditEntry,
    AuditPurpose,
    Child,
    Enrolment,
    Household,
    ListedEnrolment,
    RefusedRequest,
)
from services.enrolment.seats import Reason

log = logging.getLogger(__name__)

CHILD_NOT_FOUND = Reason("child_not_found", access.CHILD_NOT_FOUND)
OFFERING_NOT_FOUND = Reason("offering_not_found", access.OFFERING_NOT_FOUND)


@dataclass(frozen=True)
class _Offering:
    projection: OfferingProjection
    territory: Territory


def decide_requests(repo: Repository, runtime: Runtime, requests: Sequence[EnrolmentRequested]) -> int:
    """Decide a partition's batch of requests, in the order given (queue order); how many were new."""
    unique: list[EnrolmentRequested] = []
    seen: set[str] = set()
    for request in requests:
        if request.request_id not in seen:  # the same message twice in one batch (a redelivery)
            seen.add(request.request_id)
            unique.append(request)
    return sum(_decide_offering(repo, runtime, group[0].request.offering_id, group) for group in _groups(unique))


def _groups(requests: list[EnrolmentRequested]) -> list[list[EnrolmentRequested]]:
    """The batch as groups of one offering each, to decide one after the other.

    One group per offering (one seats write each), unless a child has requests for
    two offerings in the batch: the order between them decides which one an overlap
    refuses, so the batch is then cut into runs of consecutive requests instead.
    """
    by_offering: dict[str, list[EnrolmentRequested]] = {}
    offerings_of_child: dict[str, set[str]] = {}
    for request in requests:
        by_offering.setdefault(request.request.offering_id, []).append(request)
        offerings_of_child.setdefault(request.request.child_id, set()).add(request.request.offering_id)
    if all(len(offerings) == 1 for offerings in offerings_of_child.values()):
        return list(by_offering.values())
    runs: list[list[EnrolmentRequested]] = []
    for request in requests:
        if runs and runs[-1][0].request.offering_id == request.request.offering_id:
            runs[-1].append(request)
        else:
            runs.append([request])
    return runs


@dataclass
class _Candidate:
    """A request about a child of the caller, on its way through the checks."""

    request: EnrolmentRequested
    wanted: EnrolmentRequest
    child: Child
    household: Household
    reasons: list[Reason]


def _decide_offering(repo: Repository, runtime: Runtime, offering_id: str, requests: list[EnrolmentRequested]) -> int:
    ids = [r.request_id for r in requests]
    seats = repo.seats_snapshot(offering_id)
    refused_before = {r.id for r in repo.refusals(ids)}
    new = [r for r in requests if r.request_id not in refused_before and not (seats and seats.knows(r.request_id))]
    if not new:
        return 0
    offering = _offering(repo, runtime, offering_id)
    if offering is None:
        _refuse_outright(repo, runtime, [(request, OFFERING_NOT_FOUND) for request in new])
        return len(new)
    candidates, outright = _candidates(repo, new)
    checker = _Checker(repo, runtime, offering, repo.needs_of({c.child.id for c in candidates}))
    _settle_on_children(repo, runtime, checker, candidates)
    now = runtime.now()
    repo.audit(
        [AuditEntry.of(c.request.viewer, c.child.id, AuditPurpose.ELIGIBILITY, "household", now) for c in candidates]
    )
    stored = {r.id: r for r in repo.enrolments(c.request.request_id for c in candidates)}
    records = [
        stored.get(c.request.request_id) or _record(c.request, c.wanted, c.child, c.household, offering.projection)
        for c in candidates
    ]
    repo.add_enrolments([record for record in records if record.id not in stored])
    if candidates:
        seating.decide(repo, runtime, offering_id, [(r, c.reasons) for r, c in zip(records, candidates, strict=True)])
    _refuse_outright(repo, runtime, outright)
    return len(new)


def _candidates(
    repo: Repository, requests: list[EnrolmentRequested]
) -> tuple[list[_Candidate], list[tuple[EnrolmentRequested, Reason]]]:
    """The requests about a child of the caller, valid under the domain's rules; the others refused outright."""
    children = {c.id: c for c in repo.children({r.request.child_id for r in requests})}
    households = repo.households_of({c.household_id for c in children.values()})
    candidates: list[_Candidate] = []
    outright: list[tuple[EnrolmentRequested, Reason]] = []
    for request in requests:
        child = children.get(request.request.child_id)
        household = households.get(child.household_id) if child is not None else None
        if child is None or household is None or not access.owns(request.viewer, household):
            outright.append((request, CHILD_NOT_FOUND))
            continue
        wanted = _domain_request(request)
        if isinstance(wanted, Reason):
            outright.append((request, wanted))
            continue
        candidates.append(_Candidate(request, wanted, child, household, []))
    return candidates, outright


def _settle_on_children(repo: Repository, runtime: Runtime, checker: "_Checker", candidates: list[_Candidate]) -> None:
    """Check each candidate, listing the eligible ones on their child first (see the module docstring).

    Two requests of one child for overlapping periods, decided at the same time (one
    batch, or two partitions): each lists itself on the child (an atomic ``$push``)
    and is then checked against the entries listed before it; the later one is
    refused and unlisted. A request already listed (a redelivery) is not listed again.
    """
    to_list: list[tuple[str, ListedEnrolment]] = []
    now = runtime.now()
    for candidate in candidates:
        listed = candidate.child.enrolments
        if any(entry.enrolment_id == candidate.request.request_id for entry in listed):
            continue
        candidate.reasons = checker.refusals(candidate, listed)
        if not candidate.reasons:
            entry = ListedEnrolment(candidate.request.request_id, checker.offering_id, candidate.wanted.period, now)
            to_list.append((candidate.child.id, entry))
    listed_now = repo.list_enrolments(to_list)
    withdrawn: set[str] = set()
    for candidate in candidates:
        if candidate.reasons:
            continue
        child = listed_now.get(candidate.child.id, candidate.child)
        ids = [entry.enrolment_id for entry in child.enrolments]
        request_id = candidate.request.request_id
        earlier = child.enrolments[: ids.index(request_id)] if request_id in ids else child.enrolments
        # Refused a moment ago in this batch: it holds nothing (its entry is being removed).
        earlier = tuple(entry for entry in earlier if entry.enrolment_id not in withdrawn)
        candidate.reasons = checker.refusals(candidate, earlier)
        if candidate.reasons:
            # Another request of this child, listed first, overlaps: it wins.
            repo.unlist_enrolment(child.id, request_id)
            withdrawn.add(request_id)


def _offering(repo: Repository, runtime: Runtime, offering_id: str) -> _Offering | None:
    try:
        projection = projections.offering_for_request(repo, runtime, offering_id)
    except NotFound:
        return None
    # Unavailable (the partners service away and no projection yet) propagates: the
    # batch stays unacknowledged and is decided on the next delivery.
    return _Offering(projection, projections.territory_for_request(repo, runtime, projection.alliance_id))


def _domain_request(request: EnrolmentRequested) -> EnrolmentRequest | Reason:
    """The request under the domain's rules (the gateway checked its shape only)."""
    try:
        return EnrolmentRequest.model_validate(request.request.model_dump(mode="json"))
    except ValidationError as exc:
        errors = validation_failed_from_pydantic(exc).errors
        return Reason("invalid_request", "; ".join(f"{e['field']}: {e['message']}" for e in errors))


class _Checker:
    """The eligibility rule (``domain.check_eligibility``) for one offering's requests."""

    def __init__(self, repo: Repository, runtime: Runtime, offering: _Offering, needs: dict[str, ChildNeeds]) -> None:
        self._repo = repo
        self._runtime = runtime
        self._offering = offering
        self._needs = needs
        self.offering_id = offering.projection.offering_id

    def refusals(self, candidate: _Candidate, listed: tuple[ListedEnrolment, ...]) -> list[Reason]:
        """Every reason to refuse the request (empty: eligible), given the child's other listed enrolments."""
        now = self._runtime.now()
        territory = self._offering.territory
        request_id = candidate.request.request_id
        found = check_eligibility(
            candidate.wanted,
            candidate.child.birth_date,
            self._needs.get(candidate.child.id, ChildNeeds()),
            candidate.household.spec,
            self._offering.projection,
            territory.comuni_istat or frozenset(),
            territory.formalized_partner_ids,
            active_overlapping(self._repo, candidate.child.id, listed, candidate.wanted.period, request_id, now),
            now.astimezone(ROME).date(),
        )
        return [Reason(r.code.value, r.message) for r in found]


def _record(
    request: EnrolmentRequested,
    wanted: EnrolmentRequest,
    child: Child,
    household: Household,
    offering: OfferingProjection,
) -> Enrolment:
    return Enrolment(
        id=request.request_id,
        offering_id=offering.offering_id,
        offering_title=offering.title,
        alliance_id=offering.alliance_id,
        provider_partner_id=offering.provider_partner_id,
        child_id=child.id,
        child_first_name=child.first_name,
        child_last_name=child.last_name,
        child_codice_fiscale=mask_codice_fiscale(child.codice_fiscale),
        child_birth_date=child.birth_date,
        household_id=household.id,
        owner_subject=request.viewer.subject,
        period=wanted.period,
        attendance_mode=wanted.attendance_mode,
        chosen_weekdays=wanted.chosen_weekdays,
        hours=wanted.hours,
        requested_at=request.accepted_at,
        protocol=request.protocol,
    )


def _refuse_outright(repo: Repository, runtime: Runtime, refused: Sequence[tuple[EnrolmentRequested, Reason]]) -> None:
    """Store the refusal of requests no enrolment can be made of (no such child or offering), and say so."""
    now = runtime.now()
    for request, reason in refused:
        refusal = RefusedRequest(
            id=request.request_id,
            owner_subject=request.viewer.subject,
            protocol=request.protocol,
            offering_id=request.request.offering_id,
            child_id=request.request.child_id,
            reasons=(reason,),
            requested_at=request.accepted_at,
            decided_at=now,
        )
        repo.add_refusal(refusal)
        _announce(runtime, refusal)


def _announce(runtime: Runtime, refusal: RefusedRequest) -> None:
    # No outbox here: the event id is derived from the request, so the copy sent again
    # after a redelivery is the same event to every consumer.
    event = EnrolmentRefused(
        event_id=f"refused-{refusal.id}",
        occurred_at=refusal.decided_at,
        offering_id=refusal.offering_id,
        enrolment_id=refusal.id,
        child_id=refusal.child_id,
        reasons=[RefusalReason(code=r.code, message=r.message) for r in refusal.reasons],
    )
    try:
        runtime.dispatch(event.event_type, event.model_dump(mode="json"))
    except Exception:
        log.exception("refusal %s stored but not announced", refusal.id)
