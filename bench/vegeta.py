"""vegeta (https://github.com/tsenart/vegeta), a compiled HTTP load generator, for the benchmarks.

It is installed once with ``go install`` into ``${CONCILIARE_CACHE:-~/.cache/conciliare}/vegeta/``
and reused from there. ``attack`` fires a JSON targets file at a fixed rate and reports
vegeta's own wall and CPU time; ``decode`` reads the binary results back (one ``Hit`` per
request, with the response body vegeta records).
"""

import base64
import json
import os
import resource
import shutil
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

MODULE = "github.com/tsenart/vegeta/v12@latest"
GO_FALLBACK = Path("/usr/local/go/bin/go")


class VegetaError(Exception):
    pass


def cache_dir() -> Path:
    root = os.environ.get("CONCILIARE_CACHE") or str(Path.home() / ".cache" / "conciliare")
    return Path(root).expanduser() / "vegeta"


def _go() -> str:
    found = shutil.which("go")
    if found:
        return found
    if GO_FALLBACK.exists():
        return str(GO_FALLBACK)
    raise VegetaError("vegeta is not installed and there is no Go toolchain to build it (go install)")


def ensure_vegeta() -> Path:
    """The vegeta binary, built with ``go install`` into the cache the first time."""
    binary = cache_dir() / "vegeta"
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOBIN": str(binary.parent)}
    done = subprocess.run([_go(), "install", MODULE], env=env, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0 or not binary.is_file():
        raise VegetaError(f"go install {MODULE} failed:\n{done.stderr}")
    return binary


def json_target(method: str, url: str, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """One target of ``vegeta attack -format=json``: headers as lists, body base64."""
    return {
        "method": method,
        "url": url,
        "header": {name: [value] for name, value in headers.items()},
        "body": base64.b64encode(body).decode("ascii"),
    }


def write_targets(path: Path, targets: Iterable[Mapping[str, Any]]) -> int:
    """Write newline-delimited JSON targets; returns how many."""
    count = 0
    with path.open("w") as out:
        for target in targets:
            out.write(json.dumps(target, separators=(",", ":")) + "\n")
            count += 1
    return count


@dataclass(frozen=True)
class AttackUsage:
    """What the attack cost vegeta itself (its process, as seen by ``getrusage``)."""

    wall_s: float
    cpu_user_s: float
    cpu_system_s: float

    @property
    def cpu_s(self) -> float:
        return self.cpu_user_s + self.cpu_system_s

    def as_dict(self) -> dict[str, float]:
        return {
            "wall_s": round(self.wall_s, 3),
            "cpu_user_s": round(self.cpu_user_s, 3),
            "cpu_system_s": round(self.cpu_system_s, 3),
            "cpu_s": round(self.cpu_s, 3),
            "cores_busy": round(self.cpu_s / self.wall_s, 2) if self.wall_s else 0.0,
        }


# vegeta's ErrNoTargets: the targets file is exhausted.
NO_MORE_TARGETS = "no targets to attack"


def attack(
    binary: Path,
    targets: Path,
    output: Path,
    *,
    rate: int,
    workers: int,
    timeout_s: int = 30,
    keepalive: bool = False,
) -> AttackUsage:
    """Every target once, in file order, at ``rate`` requests per second.

    The targets are read lazily and the attack has no duration: it ends when the file
    does. With a duration instead, vegeta drops the requests its pacer has not sent when
    time is up (on a loaded machine, 1,833 of 2,000 in one run).
    """
    args = [
        str(binary),
        "attack",
        "-format=json",
        "-lazy",
        f"-targets={targets}",
        f"-rate={rate}/1s",
        "-duration=0",
        f"-workers={workers}",
        f"-max-workers={workers}",
        f"-timeout={timeout_s}s",
        f"-keepalive={str(keepalive).lower()}",
        f"-output={output}",
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, check=False)  # noqa: S603 - our own arguments
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise VegetaError(f"vegeta attack failed ({done.returncode}):\n{done.stderr}")
    return AttackUsage(wall, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime)


@dataclass(frozen=True)
class Hit:
    """One request of an attack, as vegeta recorded it."""

    seq: int
    code: int  # 0 when no response arrived (see ``error``)
    started: datetime  # when vegeta sent it (wall clock, UTC)
    latency_s: float
    body: bytes
    error: str
    headers: dict[str, list[str]]

    @property
    def answered(self) -> datetime:
        return self.started + timedelta(seconds=self.latency_s)

    def header(self, name: str) -> str | None:
        for key, values in self.headers.items():
            if key.lower() == name.lower() and values:
                return values[0]
        return None


def parse_hit(line: str) -> Hit:
    """A line of ``vegeta encode --to json``: latency in nanoseconds, body base64 (or null)."""
    raw = json.loads(line)
    return Hit(
        seq=int(raw.get("seq", 0)),
        code=int(raw["code"]),
        started=datetime.fromisoformat(raw["timestamp"]),
        latency_s=int(raw["latency"]) / 1e9,
        body=base64.b64decode(raw.get("body") or ""),
        error=str(raw.get("error") or ""),
        headers=dict(raw.get("headers") or {}),
    )


def decode(binary: Path, results: Path) -> list[Hit]:
    """Every request of a results file, in the order vegeta sent them."""
    args = [str(binary), "encode", "--to", "json", str(results)]
    done = subprocess.run(args, capture_output=True, text=True, check=False)  # noqa: S603 - our own arguments
    if done.returncode != 0:
        raise VegetaError(f"vegeta encode failed ({done.returncode}):\n{done.stderr}")
    hits = [parse_hit(line) for line in done.stdout.splitlines() if line.strip()]
    # The end of a lazily read targets file is recorded as one more "hit" that sent nothing.
    return sorted((hit for hit in hits if hit.error != NO_MORE_TARGETS), key=lambda hit: hit.seq)
