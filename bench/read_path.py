"""Read-path benchmark: an alliance's partners through gateway -> RPC -> MongoDB,
against a plain FastAPI endpoint reading the same collections directly.

Same data (the demo Castellanza alliance, 14 partners), same number of uvicorn
workers, 16 concurrent connections, measured by wrk (a C load generator, so the
Python under test gets the CPU, not the client). The two sides alternate over
several rounds and the medians are reported, so neither profits from running
second on a warmer database. Needs a running `make run` stack.

    python -m bench.read_path [--rounds 3] [--duration 10] [--connections 16]
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from conciliare.demo import data

GATEWAY = os.environ.get("GATEWAY_URL", "http://127.0.0.1:8000")
DIRECT_PORT = 8099
RESULTS = Path(__file__).resolve().parent / "results"
UNIT = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * UNIT[unit]


def wrk(url: str, duration: int, connections: int, headers: dict[str, str]) -> dict[str, float]:
    args = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency"]
    for key, value in headers.items():
        args += ["-H", f"{key}: {value}"]
    output = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout  # noqa: S603
    latency = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", output, re.MULTILINE))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "p50_ms": _ms(latency["50"]),
        "p99_ms": _ms(latency["99"]),
        "requests_per_s": rps,
        "non_2xx": float(errors.group(1)) if errors else 0.0,
    }


def median_of(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=int(os.environ.get("GATEWAY_WORKERS", "2")))
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: `apt-get install wrk` (make bench installs it)")

    manager = data.USERS[1]
    token = httpx.post(
        f"{GATEWAY}/v1/auth/token",
        data={"grant_type": "password", "username": manager.username, "password": manager.password},
    ).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    alliance_id = httpx.get(f"{GATEWAY}/v1/alliances", headers=auth).json()["items"][0]["id"]
    gateway_url = f"{GATEWAY}/v1/partners?alliance_id={alliance_id}"
    direct_url = f"http://127.0.0.1:{DIRECT_PORT}/alliances/{alliance_id}/partners"

    direct = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.direct_app:app",
            "--port",
            str(DIRECT_PORT),
            "--workers",
            str(args.workers),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
    )
    try:
        for _ in range(50):
            try:
                if httpx.get(direct_url).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        gateway_items = httpx.get(gateway_url, headers=auth).json()["total"]
        direct_items = httpx.get(direct_url).json()["total"]
        assert gateway_items == direct_items, (gateway_items, direct_items)
        wrk(gateway_url, 3, args.connections, auth)  # warm-up
        wrk(direct_url, 3, args.connections, {})
        gateway_rounds, direct_rounds = [], []
        for _ in range(args.rounds):
            gateway_rounds.append(wrk(gateway_url, args.duration, args.connections, auth))
            direct_rounds.append(wrk(direct_url, args.duration, args.connections, {}))
        via_gateway, baseline = median_of(gateway_rounds), median_of(direct_rounds)
    finally:
        direct.terminate()
        direct.wait()

    result: dict[str, Any] = {
        "scenario": f"GET alliance partners ({gateway_items} items), {args.connections} connections, "
        f"median of {args.rounds} alternating rounds of {args.duration}s, {args.workers} uvicorn workers each",
        "gateway": via_gateway,
        "direct": baseline,
        "p50_ratio": round(via_gateway["p50_ms"] / baseline["p50_ms"], 2),
        "throughput_ratio": round(via_gateway["requests_per_s"] / baseline["requests_per_s"], 2),
        "targets": {"p50_ratio_max": 1.5, "throughput_ratio_min": 0.6},
    }
    result["meets_targets"] = result["p50_ratio"] <= 1.5 and result["throughput_ratio"] >= 0.6
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "read_path.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
