"""Vouchers benchmark: rank and award 50,000 applications of one programme through the service.

Against the running servers (RabbitMQ and the MongoDB-wire server of ``make run``
or of the tests), on a private RabbitMQ virtual host and a throwaway database, it:

1. loads (not timed) one closed programme and ``--applications`` reviewed eligible
   applications, straight through the service's repository, in batches;
2. starts one vouchers service process (``nameko run``) on that vhost and database;
3. times, over RPC as the gateway would call them: ``rank_programme`` (load the
   eligible applications, order them by score and tie-breaks, decide each award
   within the budget, persist the whole ranking), ``publish_ranking``, and
   ``award_programme`` (one voucher with a code per awarded row, the award ledger
   entries, the programme's status);
4. reads the service process's peak resident memory (``VmHWM``) and checks that the
   ledger reconciles with the vouchers.

    python -m bench.vouchers_ranking [--applications 50000] [--budget-cents 14400000]

The default budget is seed 002's cash (100,000 € FSE + 44,000 € ATS): 480 vouchers
of 300 €; ``--budget-cents 300000000`` awards 10,000. The server needs room for the
applications (~100 MB of documents): ``make run``'s H2-file server or MongoDB. The
in-memory test server (1 GB heap, shared by every running test) can run out of
memory with several such databases at once.

Targets (issue 8): at most 5 s end to end, peak memory of the service under 1 GB.
The JSON summary is printed and written to ``bench/results/vouchers_ranking.json``.
"""

import eventlet

eventlet.monkey_patch()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from datetime import UTC, date, datetime, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402
from urllib.parse import quote  # noqa: E402

import httpx  # noqa: E402
from nameko.standalone.rpc import ServiceRpcClient  # noqa: E402
from pymongo import MongoClient  # noqa: E402

from conciliare.contracts.vouchers import (  # noqa: E402
    ApplicantSnapshot,
    ApplicationStatus,
    CriterionScore,
    GuardianSnapshot,
    ProgrammeSpec,
    ProgrammeStatus,
    StatusChange,
)
from conciliare.settings import get_platform_settings  # noqa: E402
from services.vouchers.domain import ranking  # noqa: E402
from services.vouchers.domain.eligibility import mask_codice_fiscale  # noqa: E402
from services.vouchers.repository import Application, Programme, VouchersRepository  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
ADMIN = {"subject": "bench.admin", "role": "platform_admin"}
RPC_TIMEOUT = 300


def spec(budget_cents: int) -> ProgrammeSpec:
    now = datetime.now(UTC)
    return ProgrammeSpec.model_validate(
        {
            "project_id": "bench-project",
            "action_code": "A",
            "title": "Conciliare le responsabilità: voucher (benchmark)",
            "year": now.year,
            "budget_cents": budget_cents,
            "funding_sources": [
                {"name": "FSE POR 2014-2020", "amount_cents": budget_cents * 100 // 144},
                {"name": "ATS Val Padana", "amount_cents": budget_cents - budget_cents * 100 // 144},
            ],
            "eligible_service_types": ["baby_sitting", "centro_estivo", "post_scuola"],
            "opens_at": (now - timedelta(days=30)).isoformat(),
            "closes_at": (now - timedelta(days=1)).isoformat(),
            "criteria": [
                {
                    "kind": "isee_bands",
                    "bands": [
                        {"max_isee_cents": 1_000_000, "points": 30},
                        {"max_isee_cents": 2_000_000, "points": 20},
                        {"max_isee_cents": 4_000_000, "points": 10},
                    ],
                },
                {"kind": "single_parent", "points": 15},
                {"kind": "child_disability", "points": 20},
                {"kind": "minors", "points": 12, "unit_max": 3},
                {"kind": "both_working", "points": 10},
                {"kind": "weekly_hours", "points": 8, "unit_max": 72},
            ],
            "voucher_valid_until": (now + timedelta(days=365)).date().isoformat(),
        }
    )


def applications(programme: Programme, count: int, seed: int = 2027) -> list[Application]:
    """``count`` reviewed eligible applications, scored by the domain's own rule."""
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(days=29)
    result = []
    for n in range(1, count + 1):
        two = rng.random() < 0.7
        guardians = [
            GuardianSnapshot(
                codice_fiscale=f"RSSMRA{n:08d}XY",
                employment="employed_by_partner",
                employer_partner_id="asst-crema",
                weekly_hours=rng.choice([18, 24, 30, 36, 40]),
            )
        ]
        if two:
            guardians.append(
                GuardianSnapshot(
                    codice_fiscale=f"BNCLRA{n:08d}XY",
                    employment=rng.choice(["employed_elsewhere", "not_working", "self_employed"]),
                    employer_partner_id=None,
                    weekly_hours=rng.choice([0, 20, 36]),
                )
            )
        snapshot = ApplicantSnapshot(
            residence_comune_istat="019035",
            single_parent=not two,
            isee_cents=rng.randrange(300_000, 4_000_000, 50_000),
            isee_kind="ordinario",
            isee_expires_on=date(2099, 12, 31),
            guardians=guardians,
            minors_count=rng.randint(1, 4),
            child_codice_fiscale=f"BNCGLI{n:08d}XY",
            child_birth_date=date(2018, 1, 1),
        )
        disability = rng.random() < 0.05
        breakdown: list[CriterionScore] = ranking.score(programme.spec.criteria, snapshot, disability)
        result.append(
            Application(
                id=uuid.uuid4().hex,
                programme_id=programme.id,
                alliance_id=programme.alliance_id,
                protocol=f"{programme.spec.year}/{n:06d}",
                sequence=n,
                submitted_at=start + timedelta(milliseconds=n * 37),
                applicant_subject=f"famiglia.{n}",
                household_id=f"h{n}",
                child_id=f"c{n}",
                snapshot=snapshot,
                disability_priority=disability,
                claims_disability_priority=disability,
                no_double_funding=True,
                attachments=[],
                status=ApplicationStatus.ELIGIBLE,
                automatic_reasons=[],
                review_note=None,
                reviewed_by="bench",
                score=sum(b.points for b in breakdown),
                breakdown=breakdown,
                cf_masked=mask_codice_fiscale(guardians[0].codice_fiscale),
            )
        )
    return result


def _vhost(api: str, name: str, create: bool) -> None:
    url = f"{api.rstrip('/')}/api/vhosts/{quote(name, safe='')}"
    with httpx.Client(timeout=10) as http:
        if create:
            http.put(url).raise_for_status()
            permissions = f"{api.rstrip('/')}/api/permissions/{quote(name, safe='')}/guest"
            http.put(permissions, json={"configure": ".*", "write": ".*", "read": ".*"}).raise_for_status()
        else:
            answer = http.delete(url)
            if answer.status_code not in (204, 404):
                print(f"warning: could not delete vhost {name}: {answer.status_code}", file=sys.stderr)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(count: int, budget_cents: int, rabbit_api: str) -> dict[str, Any]:
    settings = get_platform_settings()
    tag = uuid.uuid4().hex[:8]
    prefix = f"bench_{tag}_"
    vhost = f"bench_vouchers_{tag}"
    amqp = settings.amqp_uri.rstrip("/") + "/" + vhost
    client: MongoClient[dict[str, Any]] = MongoClient(settings.mongo_uri, tz_aware=True)
    database = client[f"{prefix}vouchers"]
    _vhost(rabbit_api, vhost, create=True)
    service: subprocess.Popen[bytes] | None = None
    try:
        repo = VouchersRepository(database)
        now = datetime.now(UTC)
        programme = Programme(
            id=uuid.uuid4().hex,
            alliance_id="bench-alliance",
            spec=spec(budget_cents),
            status=ProgrammeStatus.CLOSED,
            history=[StatusChange(status=ProgrammeStatus.CLOSED, by="bench", at=now)],
            awarded_cents=0,
            ranking_run=None,
            ranked_awards_cents=0,
            version=1,
            created_at=now,
        )
        load_started = time.perf_counter()
        repo.insert_programme(programme)
        repo.insert_applications(applications(programme, count))
        load_seconds = time.perf_counter() - load_started

        env = {
            **os.environ,
            "AMQP_URI": amqp,
            "MONGO_DB_PREFIX": prefix,
            "OTEL_TRACES_EXPORTER": "none",
            "LOG_LEVEL": "WARNING",
        }
        argv = [sys.executable, "-m", "nameko", "run", "--config", "config/nameko.yaml"]
        service = subprocess.Popen([*argv, "services.vouchers.service:VouchersService"], cwd=ROOT, env=env)  # noqa: S603
        with ServiceRpcClient("vouchers", uri=amqp, timeout=RPC_TIMEOUT) as rpc:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with eventlet.Timeout(2):
                        rpc.ping()
                    break
                except Exception:
                    if time.monotonic() > deadline or service.poll() is not None:
                        raise RuntimeError("the vouchers service did not start") from None
                    time.sleep(0.5)
            baseline_mb = peak_rss_mb(service.pid)
            steps: dict[str, float] = {}
            started = time.perf_counter()
            for step in ("rank_programme", "publish_ranking", "award_programme"):
                step_started = time.perf_counter()
                getattr(rpc, step)(programme_id=programme.id, viewer=ADMIN)
                steps[step] = round(time.perf_counter() - step_started, 3)
            total = time.perf_counter() - started
            peak_mb = peak_rss_mb(service.pid)
            ledger = rpc.get_ledger(programme_id=programme.id, viewer=ADMIN)
        vouchers = database.vouchers.count_documents({})
        return {
            "benchmark": "vouchers_ranking",
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()} {os.cpu_count()} cpu, {platform.python_implementation()} "
            f"{platform.python_version()}",
            "applications": count,
            "budget_cents": budget_cents,
            "vouchers_awarded": vouchers,
            "load_seconds_not_timed": round(load_seconds, 2),
            "steps_seconds": steps,
            "total_seconds": round(total, 3),
            "service_rss_before_mb": round(baseline_mb, 1),
            "service_peak_rss_mb": round(peak_mb, 1),
            "ledger_awarded_cents": ledger["awarded_cents"],
            "ledger_reconciles": ledger["reconciles"],
            "target": "<= 5 s, < 1024 MB",
            "met": total <= 5 and peak_mb < 1024 and ledger["reconciles"],
        }
    finally:
        if service is not None and service.poll() is None:
            service.send_signal(signal.SIGTERM)
            try:
                service.wait(timeout=20)
            except subprocess.TimeoutExpired:
                service.kill()
        client.drop_database(f"{prefix}vouchers")
        client.close()
        _vhost(rabbit_api, vhost, create=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--applications", type=int, default=50_000)
    parser.add_argument(
        "--budget-cents", type=int, default=14_400_000, help="seed 002: 144,000 € (480 vouchers of 300 €)"
    )
    parser.add_argument(
        "--rabbit-api", default=os.environ.get("RABBIT_MANAGEMENT_URI", "http://guest:guest@127.0.0.1:15672")
    )
    args = parser.parse_args()
    result = run(args.applications, args.budget_cents, args.rabbit_api)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "vouchers_ranking.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
