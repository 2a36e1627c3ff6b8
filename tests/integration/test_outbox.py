"""The outbox relay against the real MongoDB-wire server: at-least-once, nothing lost, no lock."""

import threading
from typing import Any

import pytest
from pymongo import MongoClient

from conciliare.chassis.outbox import OUTBOX_FIELD, PENDING_FLAG, OutboxRelay, attach_events, push_events
from conciliare.contracts.common import IntegrationEvent

pytestmark = pytest.mark.integration


class Noted(IntegrationEvent):
    event_type = "thing.noted"
    n: int


@pytest.fixture
def db(mongo_client: MongoClient[dict[str, Any]], fresh_database: str) -> Any:
    return mongo_client[fresh_database]


def test_events_are_published_once_each_and_leave_the_outbox(db: Any) -> None:
    relay = OutboxRelay(db, ["things"])
    relay.ensure_indexes()
    db.things.insert_one(attach_events({"_id": "t1"}, [Noted(alliance_id="a", n=1)]))
    db.things.update_one({"_id": "t1"}, push_events({"$set": {"x": 1}}, [Noted(alliance_id="a", n=2)]))
    sent: list[tuple[str, int]] = []
    assert relay.publish_pending(lambda kind, payload: sent.append((kind, payload["n"]))) == 2
    assert sent == [("thing.noted", 1), ("thing.noted", 2)]
    stored = db.things.find_one({"_id": "t1"})
    assert stored[OUTBOX_FIELD] == [] and stored[PENDING_FLAG] is False and stored["x"] == 1
    assert relay.publish_pending(lambda kind, payload: sent.append((kind, payload["n"]))) == 0


def test_an_event_queued_while_publishing_is_kept_for_the_next_pass(db: Any) -> None:
    relay = OutboxRelay(db, ["things"])
    db.things.insert_one(attach_events({"_id": "t1"}, [Noted(alliance_id="a", n=1)]))
    sent: list[int] = []

    def dispatch(kind: str, payload: dict[str, Any]) -> None:
        sent.append(payload["n"])
        if payload["n"] == 1:  # a writer queues another event mid-publication
            db.things.update_one({"_id": "t1"}, push_events({}, [Noted(alliance_id="a", n=2)]))

    relay.publish_pending(dispatch, collection="things", document_id="t1")
    assert sent == [1]
    assert db.things.find_one({"_id": "t1"})[PENDING_FLAG] is True
    relay.publish_pending(dispatch)
    assert sent == [1, 2]
    assert db.things.find_one({"_id": "t1"})[OUTBOX_FIELD] == []


def test_concurrent_relays_lose_no_event(db: Any) -> None:
    """Two instances relaying at once may both publish an event (consumers de-duplicate) but drop none."""
    relay = OutboxRelay(db, ["things"])
    db.things.insert_many(
        [attach_events({"_id": f"t{i}"}, [Noted(alliance_id="a", n=i * 10 + k) for k in range(3)]) for i in range(40)]
    )
    seen: set[int] = set()
    lock = threading.Lock()

    def dispatch(kind: str, payload: dict[str, Any]) -> None:
        with lock:
            seen.add(payload["n"])

    workers = [threading.Thread(target=relay.publish_pending, args=(dispatch,)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    relay.publish_pending(dispatch)
    assert seen == {i * 10 + k for i in range(40) for k in range(3)}
    assert db.things.count_documents({PENDING_FLAG: True}) == 0


def test_a_failed_dispatch_keeps_what_did_not_go_out(db: Any) -> None:
    relay = OutboxRelay(db, ["things"])
    db.things.insert_one(attach_events({"_id": "t1"}, [Noted(alliance_id="a", n=k) for k in range(3)]))
    sent: list[int] = []

    def broker_drops_at_second(kind: str, payload: dict[str, Any]) -> None:
        if payload["n"] == 1:
            raise ConnectionError("broker away")
        sent.append(payload["n"])

    with pytest.raises(ConnectionError):
        relay.publish_pending(broker_drops_at_second)
    assert [r["payload"]["n"] for r in db.things.find_one({"_id": "t1"})[OUTBOX_FIELD]] == [1, 2]
    relay.publish_pending(lambda kind, payload: sent.append(payload["n"]))
    assert sent == [0, 1, 2]
    assert db.things.find_one({"_id": "t1"})[PENDING_FLAG] is False
