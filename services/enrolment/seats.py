"""The seats of one offering, and the one rule that allocates them.

``OfferingSeats`` is an aggregate: capacity, the confirmed enrolments, the waitlist
in strict order of arrival, and a ``version`` for optimistic concurrency. It is plain
Python with no I/O: a use case loads it, applies one operation and saves it in one
conditional write (``seating.py``). Each operation returns the events it causes.

The rule:
- a request is confirmed when a seat is free *and* nobody is waiting; otherwise it
  joins the end of the waitlist, so a new request never jumps the queue;
- a seat that frees up (a cancellation, more capacity, the offering reopening) goes
  to the head of the waitlist at once, as many as seats allow, first come first
  served;
- never more confirmed than the capacity; a capacity below the confirmed count is
  refused (``change_capacity``), because confirmed families keep their seat;
- an offering that does not accept requests (not published) refuses new ones and
  promotes nobody until it reopens.

Every request gets a ``sequence``, its order of arrival among the offering's requests.
Requesting an enrolment the aggregate already took changes nothing: a decision
replayed after a crash never counts a child twice. The aggregate remembers every
request it took (and how each ended), which is also what the family reads: status,
waitlist position, whether it was promoted, when and why it was cancelled.
"""

from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from conciliare.errors import Conflict
from services.enrolment.domain import EnrolmentStatus, transition

NOT_ACCEPTING_REASON: Final = "Il servizio non accetta più iscrizioni (non è pubblicato)."


# --- what the aggregate remembers about each request ---------------------------------------


@dataclass(frozen=True)
class Cancellation:
    at: datetime
    previous_status: EnrolmentStatus
    reason: str | None = None
    by: str | None = None


@dataclass(frozen=True)
class Reason:
    """Why a request was refused: a stable code and its explanation in Italian."""

    code: str
    message: str


NOT_ACCEPTING: Final = Reason("offering_not_published", NOT_ACCEPTING_REASON)


@dataclass(frozen=True)
class Rejection:
    """A request refused: not eligible, or the offering had stopped accepting requests."""

    at: datetime
    reasons: tuple[Reason, ...]


@dataclass(frozen=True)
class Placement:
    """Where one enrolment stands, as the family and the staff read it."""

    status: EnrolmentStatus
    sequence: int | None = None
    waitlist_position: int | None = None
    promoted: bool = False
    refusal_reasons: tuple[Reason, ...] = ()
    decided_at: datetime | None = None
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None


UNDECIDED: Final = Placement(EnrolmentStatus.REQUESTED)


# --- events -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Confirmed:
    enrolment_id: str
    sequence: int


@dataclass(frozen=True)
class Waitlisted:
    enrolment_id: str
    sequence: int
    position: int


@dataclass(frozen=True)
class Promoted:
    """A waitlisted enrolment got a seat; ``position`` is the one it held in the waitlist."""

    enrolment_id: str
    sequence: int
    position: int


@dataclass(frozen=True)
class Cancelled:
    enrolment_id: str
    sequence: int | None
    previous_status: EnrolmentStatus
    reason: str | None


@dataclass(frozen=True)
class Refused:
    """A request refused: it holds no seat and takes no place in the order of arrival."""

    enrolment_id: str
    reasons: tuple[Reason, ...]


SeatEvent = Confirmed | Waitlisted | Promoted | Cancelled | Refused


class CapacityBelowConfirmed(Conflict):
    """The capacity cannot drop below the seats already confirmed."""

    def __init__(self, capacity: int, confirmed: int) -> None:
        super().__init__(f"La capienza non può scendere a {capacity}: ci sono già {confirmed} iscrizioni confermate.")
        self.capacity = capacity
        self.confirmed = confirmed


# --- the aggregate ---------------------------------------------------------------------------


class OfferingSeats:
    """The seats of one offering (see the module docstring for the rule).

    ``offering_version`` is the catalog revision the capacity and the accepting flag
    come from, so a late catalog event never undoes a newer one. ``arrivals`` are the
    requests taken, in order (a request's sequence is its position, from 1);
    ``decision_times`` say when they were decided, as ``(first sequence, time)`` of
    each batch, ascending (one entry per batch keeps the stored form small).
    """

    def __init__(
        self,
        offering_id: str,
        capacity: int = 0,
        accepting: bool = False,
        *,
        offering_version: int = 0,
        version: int = 0,
        arrivals: Sequence[str] = (),
        decision_times: Sequence[tuple[int, datetime]] = (),
        confirmed: Sequence[str] = (),
        waitlist: Sequence[str] = (),
        promoted: Iterable[str] = (),
        cancelled: Mapping[str, Cancellation] | None = None,
        rejected: Mapping[str, Rejection] | None = None,
    ) -> None:
        self.offering_id = offering_id
        self._capacity = capacity
        self._accepting = accepting
        self.offering_version = offering_version
        self.version = version
        self._arrivals: list[str] = list(arrivals)
        self._sequence: dict[str, int] = {e: sequence for sequence, e in enumerate(self._arrivals, start=1)}
        self._decision_times: list[tuple[int, datetime]] = [(int(n), at) for n, at in decision_times]
        self._confirmed: list[str] = list(confirmed)
        self._waitlist: list[str] = list(waitlist)
        self._promoted: set[str] = set(promoted)
        self._cancelled: dict[str, Cancellation] = dict(cancelled or {})
        self._rejected: dict[str, Rejection] = dict(rejected or {})
        self._check()
        # Whether an operation changed anything since it was built (what needs saving).
        self.changed = False
        self._positions: dict[str, int] | None = None  # waitlist positions, built when read

    def _check(self) -> None:
        confirmed, waitlist, cancelled = set(self._confirmed), set(self._waitlist), set(self._cancelled)
        if self._capacity < 0:
            raise ValueError("capacity must not be negative")
        if len(confirmed) != len(self._confirmed) or len(waitlist) != len(self._waitlist):
            raise ValueError("an enrolment appears twice")
        if len(self._confirmed) > self._capacity:
            raise ValueError("more confirmed than capacity")
        if confirmed & waitlist or confirmed & cancelled or waitlist & cancelled:
            raise ValueError("an enrolment is in two states")
        if len(self._sequence) != len(self._arrivals):
            raise ValueError("an enrolment arrived twice")
        if (confirmed | waitlist | cancelled) != self._sequence.keys():
            raise ValueError("every request taken is confirmed, waitlisted or cancelled, and only those")
        if self._rejected.keys() & self._sequence.keys():
            raise ValueError("an enrolment was both taken and rejected")
        firsts = [n for n, _ in self._decision_times]
        if firsts != sorted(set(firsts)) or any(not 1 <= n <= len(self._arrivals) for n in firsts):
            raise ValueError("decision times must start at distinct arrivals, in order")

    # --- reading -----------------------------------------------------------------------

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def accepting(self) -> bool:
        return self._accepting

    @property
    def confirmed(self) -> tuple[str, ...]:
        """Confirmed enrolments, in the order they got their seat."""
        return tuple(self._confirmed)

    @property
    def waitlist(self) -> tuple[str, ...]:
        """Waitlisted enrolments, first in line first."""
        return tuple(self._waitlist)

    @property
    def free_seats(self) -> int:
        return self._capacity - len(self._confirmed)

    @property
    def arrivals(self) -> tuple[str, ...]:
        """Every request taken, in order of arrival."""
        return tuple(self._arrivals)

    @property
    def decision_times(self) -> tuple[tuple[int, datetime], ...]:
        return tuple(self._decision_times)

    @property
    def promoted(self) -> frozenset[str]:
        return frozenset(self._promoted)

    @property
    def cancelled(self) -> Mapping[str, Cancellation]:
        return dict(self._cancelled)

    @property
    def rejected(self) -> Mapping[str, Rejection]:
        return dict(self._rejected)

    def knows(self, enrolment_id: str) -> bool:
        """Whether a request of this enrolment was already decided here."""
        return enrolment_id in self._sequence or enrolment_id in self._rejected

    def status_of(self, enrolment_id: str) -> EnrolmentStatus:
        """The enrolment's status; ``requested`` while it is not decided here."""
        if enrolment_id in self._rejected:
            return EnrolmentStatus.REFUSED
        if enrolment_id in self._cancelled:
            return EnrolmentStatus.CANCELLED
        if self.waitlist_position(enrolment_id) is not None:
            return EnrolmentStatus.WAITLISTED
        if enrolment_id in self._sequence:
            return EnrolmentStatus.CONFIRMED
        return EnrolmentStatus.REQUESTED

    def waitlist_position(self, enrolment_id: str) -> int | None:
        """1 for the head of the waitlist; None when not waiting."""
        if self._positions is None:
            self._positions = {e: position for position, e in enumerate(self._waitlist, start=1)}
        return self._positions.get(enrolment_id)

    def sequence_of(self, enrolment_id: str) -> int | None:
        """The request's order of arrival among the offering's; None if never taken."""
        return self._sequence.get(enrolment_id)

    def decided_at(self, enrolment_id: str) -> datetime | None:
        """When the request was taken (None if never, or if no time was kept)."""
        sequence = self._sequence.get(enrolment_id)
        if sequence is None:
            return None
        index = bisect_right(self._decision_times, sequence, key=lambda d: d[0]) - 1
        return self._decision_times[index][1] if index >= 0 else None

    def placement(self, enrolment_id: str) -> Placement:
        rejection = self._rejected.get(enrolment_id)
        if rejection is not None:
            return Placement(EnrolmentStatus.REFUSED, refusal_reasons=rejection.reasons, decided_at=rejection.at)
        sequence = self._sequence.get(enrolment_id)
        if sequence is None:
            return UNDECIDED
        cancellation = self._cancelled.get(enrolment_id)
        return Placement(
            self.status_of(enrolment_id),
            sequence=sequence,
            waitlist_position=self.waitlist_position(enrolment_id),
            promoted=enrolment_id in self._promoted,
            decided_at=self.decided_at(enrolment_id),
            cancelled_at=cancellation.at if cancellation else None,
            cancel_reason=cancellation.reason if cancellation else None,
        )

    # --- operations ------------------------------------------------------------------------

    def request(self, enrolment_id: str, at: datetime) -> list[SeatEvent]:
        """Take a request: confirmed if a seat is free and nobody waits, else waitlisted.

        A request already taken (or rejected) changes nothing and causes no event.
        """
        if self.knows(enrolment_id):
            return []
        if not self._accepting:
            return self.refuse(enrolment_id, at, (NOT_ACCEPTING,))
        self.changed = True
        self._arrivals.append(enrolment_id)
        sequence = self._sequence[enrolment_id] = len(self._arrivals)
        if not self._decision_times or self._decision_times[-1][1] != at:
            self._decision_times.append((sequence, at))
        if self.free_seats > 0 and not self._waitlist:
            self._confirmed.append(enrolment_id)
            return [Confirmed(enrolment_id, sequence)]
        self._waitlist.append(enrolment_id)
        self._positions = None
        return [Waitlisted(enrolment_id, sequence, len(self._waitlist))]

    def refuse(self, enrolment_id: str, at: datetime, reasons: Sequence[Reason]) -> list[SeatEvent]:
        """Record that a request was refused (every reason); a request already decided changes nothing."""
        if self.knows(enrolment_id):
            return []
        if not reasons:
            raise ValueError("a refusal needs at least one reason")
        self.changed = True
        self._rejected[enrolment_id] = Rejection(at, tuple(reasons))
        return [Refused(enrolment_id, tuple(reasons))]

    def request_many(self, enrolment_ids: Iterable[str], at: datetime) -> list[SeatEvent]:
        """Take several requests, in the given order (their order of arrival)."""
        events: list[SeatEvent] = []
        for enrolment_id in enrolment_ids:
            events += self.request(enrolment_id, at)
        return events

    def cancel(
        self, enrolment_id: str, at: datetime, reason: str | None = None, by: str | None = None
    ) -> list[SeatEvent]:
        """Cancel a confirmed or waitlisted enrolment; a freed seat promotes the waitlist's head.

        Cancelling one already cancelled raises ``InvalidTransition`` (a ``Conflict``);
        an enrolment the aggregate never took is a programming error (request it first).
        """
        if not self.knows(enrolment_id):
            raise ValueError(f"enrolment {enrolment_id} was never requested here")
        current = self.status_of(enrolment_id)
        transition(current, EnrolmentStatus.CANCELLED)
        self.changed = True
        if current is EnrolmentStatus.CONFIRMED:
            self._confirmed.remove(enrolment_id)
        else:
            self._waitlist.remove(enrolment_id)
            self._positions = None
        self._cancelled[enrolment_id] = Cancellation(at, current, reason, by)
        cancelled = Cancelled(enrolment_id, self._sequence[enrolment_id], current, reason)
        return [cancelled, *self.promote(at)]

    def promote(self, at: datetime) -> list[SeatEvent]:
        """Give every free seat to the head of the waitlist, in order (if accepting)."""
        if not self._accepting or self.free_seats <= 0 or not self._waitlist:
            return []
        chosen = self._waitlist[: self.free_seats]
        del self._waitlist[: len(chosen)]
        self._positions = None
        self.changed = True
        events: list[SeatEvent] = []
        for position, enrolment_id in enumerate(chosen, start=1):
            self._confirmed.append(enrolment_id)
            self._promoted.add(enrolment_id)
            events.append(Promoted(enrolment_id, self._sequence[enrolment_id], position))
        return events

    def change_capacity(self, capacity: int, at: datetime) -> list[SeatEvent]:
        """Set the capacity; more seats promote the waitlist, fewer than confirmed are refused."""
        if capacity < len(self._confirmed):
            raise CapacityBelowConfirmed(capacity, len(self._confirmed))
        self.changed |= capacity != self._capacity
        self._capacity = capacity
        return self.promote(at)

    def open(self, at: datetime) -> list[SeatEvent]:
        """Accept requests again; seats freed meanwhile go to the waitlist."""
        self.changed |= not self._accepting
        self._accepting = True
        return self.promote(at)

    def close(self) -> list[SeatEvent]:
        """Stop accepting requests (suspended or archived): nobody new, nobody promoted."""
        self.changed |= self._accepting
        self._accepting = False
        return []

    def follow_offering(self, offering_version: int, capacity: int, accepting: bool, at: datetime) -> list[SeatEvent]:
        """Apply the catalog's revision ``offering_version`` of the offering, unless older.

        The catalog refuses to cut the capacity below the confirmed seats (it asks
        first), so only a race brings a lower one here: confirmed families keep their
        seat, and the capacity stays at the confirmed count until the catalog sends
        another revision.
        """
        if offering_version <= self.offering_version:
            return []
        self.offering_version = offering_version
        self.changed = True
        events = self.close() if not accepting else []
        events += self.change_capacity(max(capacity, len(self._confirmed)), at)
        if accepting:
            events += self.open(at)
        return events
