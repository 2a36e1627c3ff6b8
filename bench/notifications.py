"""Notifications benchmark: 10,000 events, every delivery counted, none lost, none twice.

Self-contained on the running servers (RabbitMQ, the MongoDB-wire server): it makes
a private RabbitMQ virtual host and database prefix, starts the project's SMTP sink
(``scripts/infra/smtp_sink.py``) on a free port, ``--instances`` notifications
service processes and stand-ins for the enrolment and partners RPCs the service
asks for recipient data; then publishes ``--events`` ``enrolment.confirmed`` events
(each for its own household and provider, so every delivery can be checked) and
waits until every expected delivery has arrived or ``--timeout`` passes.

Each event makes 4 deliveries: an email to the family's guardians and one to the
provider (counted in the sink by their ``X-Conciliare-Delivery`` header), and a La
Posta entry for each (counted in the inbox documents). Reported: deliveries per
second from the first publish to the last delivery, lost and duplicated deliveries
(both must be 0). The JSON summary is printed and written to
``bench/results/notifications.json``.

    python -m bench.notifications [--events 10000] [--instances 2] [--timeout 900]
"""

import argparse
import email
import email.policy
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from nameko.rpc import rpc
from nameko.standalone.events import event_dispatcher
from pymongo import MongoClient

from conciliare.contracts.enrolment import EnrolmentConfirmed
from conciliare.settings import get_platform_settings

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DELIVERIES_PER_EVENT = 4
PUBLISH_BATCH = 500


# --- stand-ins for the owners of recipient data (run by ``nameko run`` in a subprocess) --------


class BenchEnrolment:
    name = "enrolment"

    @rpc  # type: ignore[untyped-decorator]
    def get_enrolment(self, enrolment_id: str, viewer: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": enrolment_id,
            "child_name": "Giulia Rossi",
            "offering_title": "Spazio compiti DSA",
            "period": {"start": "2027-03-25", "end": "2027-03-30"},
        }

    @rpc  # type: ignore[untyped-decorator]
    def get_household(self, household_id: str, viewer: dict[str, Any]) -> dict[str, Any]:
        return {"id": household_id, "guardians": [{"email": f"{household_id}@famiglie.example.it"}]}


class BenchPartners:
    name = "partners"

    @rpc  # type: ignore[untyped-decorator]
    def get_partner(self, partner_id: str) -> dict[str, Any]:
        return {"id": partner_id, "name": "Coop. Bench", "email": f"{partner_id}@enti.example.it"}

    @rpc  # type: ignore[untyped-decorator]
    def get_alliance(self, alliance_id: str) -> dict[str, Any]:
        return {"id": alliance_id, "name": "Alleanza bench"}


# --- the run -----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def _event(index: int, alliance_id: str) -> dict[str, Any]:
    event = EnrolmentConfirmed(
        alliance_id=alliance_id,
        offering_id="off-bench",
        enrolment_id=f"enr-{index}",
        child_id=f"child-{index}",
        household_id=f"hh-{index}",
        provider_partner_id=f"pp-{index}",
        sequence=index,
    )
    return event.model_dump(mode="json")


def _publish(amqp_uri: str, payloads: list[dict[str, Any]]) -> None:
    """As the enrolment service does: nameko events, persistent, to ``enrolment.events``."""
    dispatch = event_dispatcher(uri=amqp_uri)
    for payload in payloads:
        dispatch("enrolment", "enrolment.confirmed", payload)


def _mail_counts(directory: Path) -> Counter[str]:
    counts: Counter[str] = Counter()
    for path in directory.glob("*.eml"):
        with path.open("rb") as handle:
            message = email.message_from_binary_file(handle, policy=email.policy.default)
        counts[str(message.get("X-Conciliare-Delivery", ""))] += 1
    return counts


def _count_files(directory: Path) -> int:
    return sum(1 for _ in directory.glob("*.eml"))


def run(events: int, instances: int, timeout: float) -> dict[str, Any]:
    settings = get_platform_settings()
    management = httpx.Client(base_url=f"{settings.rabbit_management_uri}/api", timeout=10)
    vhost = f"bench-notifications-{uuid.uuid4().hex[:8]}"
    management.put(f"/vhosts/{quote(vhost, safe='')}").raise_for_status()
    management.put(
        f"/permissions/{quote(vhost, safe='')}/guest", json={"configure": ".*", "write": ".*", "read": ".*"}
    ).raise_for_status()
    amqp_uri = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    prefix = f"bench_{uuid.uuid4().hex[:8]}_"
    work = Path(tempfile.mkdtemp(prefix="bench-notifications-"))
    mail = work / "mail"
    smtp_port = _free_port()
    env = {
        **os.environ,
        "AMQP_URI": amqp_uri,
        "MONGO_DB_PREFIX": prefix,
        "NOTIFICATIONS_SMTP_PORT": str(smtp_port),
        "OTEL_TRACES_EXPORTER": "none",
        "LOG_LEVEL": "WARNING",
    }
    processes: list[subprocess.Popen[bytes]] = []
    mongo: MongoClient[dict[str, Any]] = MongoClient(settings.mongo_uri)
    database = mongo[f"{prefix}notifications"]

    def start(*argv: str) -> None:
        log = (work / f"process-{len(processes)}.log").open("wb")
        processes.append(subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))  # noqa: S603

    try:
        start(sys.executable, str(ROOT / "scripts/infra/smtp_sink.py"), "--port", str(smtp_port), "--dir", str(mail))
        _wait_port(smtp_port)
        nameko = [sys.executable, "-m", "nameko", "run", "--config", "config/nameko.yaml"]
        start(*nameko, "bench.notifications:BenchEnrolment", "bench.notifications:BenchPartners")
        for _ in range(instances):
            start(*nameko, "services.notifications.service")
        _wait_for_consumers(management, vhost, instances)

        alliance_id = f"alliance-bench-{uuid.uuid4().hex[:6]}"
        payloads = [_event(i, alliance_id) for i in range(events)]
        expected = events * DELIVERIES_PER_EVENT
        began = time.monotonic()
        for offset in range(0, events, PUBLISH_BATCH):
            _publish(amqp_uri, payloads[offset : offset + PUBLISH_BATCH])
        published = time.monotonic() - began

        def delivered() -> int:
            return _count_files(mail) + database["inboxes"].count_documents({})

        last, last_change = -1, time.monotonic()
        while True:
            now_count = delivered()
            if now_count != last:
                last, last_change = now_count, time.monotonic()
            if now_count >= expected or time.monotonic() - began > timeout or time.monotonic() - last_change > 60:
                break
            time.sleep(0.5)
        elapsed = last_change - began
        time.sleep(3)  # anything arriving late would be a duplicate: let it land

        mails = _mail_counts(mail)
        expected_mail = {f"{p['event_id']}:household:hh-{i}:email" for i, p in enumerate(payloads)} | {
            f"{p['event_id']}:partner:pp-{i}:email" for i, p in enumerate(payloads)
        }
        inbox_items: Counter[str] = Counter()
        for doc in database["inboxes"].find({}, {"items.id": 1}):
            for item in doc.get("items", []):
                inbox_items[item["id"]] += 1
        expected_inbox = {f"{p['event_id']}:household:hh-{i}:inbox" for i, p in enumerate(payloads)} | {
            f"{p['event_id']}:partner:pp-{i}:inbox" for i, p in enumerate(payloads)
        }
        lost = len(expected_mail - set(mails)) + len(expected_inbox - set(inbox_items))
        duplicated = sum(n - 1 for n in mails.values() if n > 1) + sum(n - 1 for n in inbox_items.values() if n > 1)
        unexpected = len(set(mails) - expected_mail) + len(set(inbox_items) - expected_inbox)
        total = sum(mails.values()) + sum(inbox_items.values())
        by_status = {
            str(row["_id"]): int(row["n"])
            for row in database["deliveries"].aggregate([{"$group": {"_id": "$status", "n": {"$sum": 1}}}])
        }
        errors = sorted({str(d.get("last_error")) for d in database["deliveries"].find({"last_error": {"$ne": None}})})
        log_errors = [
            line
            for path in sorted(work.glob("process-*.log"))
            for line in path.read_text(errors="replace").splitlines()
            if "ERROR" in line or "Error:" in line or "Exception:" in line
        ]
        return {
            "benchmark": "notifications",
            "events": events,
            "instances": instances,
            "expected_deliveries": expected,
            "deliveries": total,
            "emails": sum(mails.values()),
            "inbox_entries": sum(inbox_items.values()),
            "publish_seconds": round(published, 2),
            "elapsed_seconds": round(elapsed, 2),
            "deliveries_per_second": round(total / elapsed, 1) if elapsed > 0 else None,
            "lost": lost,
            "delivery_log": by_status,
            "delivery_errors": errors[:10],
            "process_errors": sorted(set(log_errors))[:10],
            "duplicated": duplicated,
            "unexpected": unexpected,
            "target_deliveries_per_second": 500,
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        }
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        mongo.drop_database(f"{prefix}notifications")
        mongo.close()
        management.delete(f"/vhosts/{quote(vhost, safe='')}")
        management.close()
        shutil.rmtree(work, ignore_errors=True)


def _wait_for_consumers(management: httpx.Client, vhost: str, instances: int, timeout: float = 60) -> None:
    """Until the notifications queue for confirmed enrolments has every instance consuming."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = management.get(f"/queues/{quote(vhost, safe='')}")
        if response.status_code == 200:
            for queue in response.json():
                if "enrolment.confirmed--notifications" in queue["name"] and queue.get("consumers", 0) >= instances:
                    return
        time.sleep(0.5)
    raise RuntimeError("the notifications service did not start consuming")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    result = run(args.events, args.instances, args.timeout)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "notifications.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
