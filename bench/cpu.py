"""CPU time of each hop of the stack, read from /proc: what a request costs, where.

A hop is recognised by its command line (the gateway's uvicorn workers by their
parent). ``used(before, after)`` gives CPU seconds per hop between two snapshots.
"""

import os
from collections import defaultdict
from pathlib import Path

HOPS = {
    "services.enrolment": "enrolment",
    "services.notifications": "notifications",
    "services.catalog": "catalog",
    "services.partners": "partners",
    "services.vouchers": "vouchers",
    "beam.smp": "rabbitmq",
    "mongo-java-server": "mongodb",
    "zipkin.jar": "zipkin",
    "smtp_sink": "smtp",
    "uvicorn": "gateway",
}
_TICK = os.sysconf("SC_CLK_TCK")


def _processes() -> dict[int, tuple[int, str, float]]:
    """pid -> (parent pid, command line, CPU seconds)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[int(entry.name)] = (int(fields[1]), command, (int(fields[11]) + int(fields[12])) / _TICK)
    return found


def _hop(pid: int, processes: dict[int, tuple[int, str, float]]) -> str | None:
    parent, command, _ = processes[pid]
    for marker, hop in HOPS.items():
        if marker in command:
            return hop
    if "multiprocessing" in command and parent in processes:  # a uvicorn worker
        return _hop(parent, processes)
    return None


def snapshot() -> dict[int, tuple[str, float]]:
    processes = _processes()
    taken = {}
    for pid, (_, _, seconds) in processes.items():
        hop = _hop(pid, processes)
        if hop is not None:
            taken[pid] = (hop, seconds)
    return taken


def used(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds per hop between the snapshots (a process started meanwhile counts from zero)."""
    total: dict[str, float] = defaultdict(float)
    for pid, (hop, seconds) in after.items():
        total[hop] += seconds - before.get(pid, (hop, 0.0))[1]
    return {hop: round(seconds, 2) for hop, seconds in sorted(total.items(), key=lambda item: -item[1])}
