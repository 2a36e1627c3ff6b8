"""Supervise the application processes of `make run`: services and gateway.

    stack.py start     start the supervisor (detached) unless it runs, wait until the gateway is ready
    stack.py stop      stop the supervisor, which stops every process it started
    stack.py status    what runs, since when, how often it was restarted (--json for tools)
    stack.py supervise the supervisor itself (what `start` runs in the background)

The supervisor is one detached process that owns the children: each nameko service
(one or more instances) and the gateway, each in its own process group with its log
under `.run/logs/`. A child that exits without being asked to (a crash, a kill, a
nameko container that died on a broker outage) is restarted after a backoff that
doubles on each quick failure (1 s, 2 s, 4 s ... up to 30 s) and starts again from
1 s once the child has stayed up for a minute. Every exit and restart is logged in
`.run/logs/supervisor.log`; `.run/supervisor.json` holds the current state.

Servers (RabbitMQ, MongoDB, MinIO, Zipkin) are handled by `scripts/infra/*.sh`, not here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
RUN_DIR = Path(os.environ.get("CONCILIARE_RUN_DIR", ROOT / ".run"))
LOG_DIR = RUN_DIR / "logs"
STATE_FILE = RUN_DIR / "supervisor.json"
SUPERVISOR_PID_FILE = RUN_DIR / "supervisor.pid"
LEGACY_PID_DIR = RUN_DIR / "pids"  # pid files of the stack.py before the supervisor
PYTHON = sys.executable
GATEWAY_PORT = int(os.environ.get("GATEWAY_PORT", "8000"))
GATEWAY_URL = f"http://127.0.0.1:{GATEWAY_PORT}"
# Services started by `make run`, with how many instances of each. Several
# instances of a service share its queue and its database.
SERVICES = {"partners": 1, "catalog": 1, "enrolment": 2, "vouchers": 1, "notifications": 1}
# CPU priority (nice) when the machine is saturated, as on a click day: answering
# families first (the gateway; raised only where the user may, e.g. root), deciding
# their requests next, mail last. Work is only reordered, never dropped: queued
# requests and events wait in the broker.
NICENESS = {"gateway": -5, "enrolment": 10, "notifications": 19}
# Concurrent workers per instance (nameko's max_workers, default 10). Nice alone does not
# hold mail back: each notification asks the enrolment and partners services (at their
# priority) and MongoDB for what it needs, so ten at once slowed deciding a click day's
# requests by a third. Two at a time still send a burst's mail within a minute.
MAX_WORKERS = {"notifications": 2}

BACKOFF_FIRST = 1.0  # seconds before the first restart
BACKOFF_MAX = 30.0
STABLE_AFTER = 60.0  # a child up this long is healthy again: backoff starts over
STOP_GRACE = 20.0  # seconds a child gets to stop after SIGTERM before SIGKILL
POLL_INTERVAL = 0.2

log = logging.getLogger("stack")


def environment() -> dict[str, str]:
    """The environment every process gets: native-mode defaults, overridable."""
    env = dict(os.environ)
    env.setdefault("OTEL_TRACES_EXPORTER", "zipkin")
    env.setdefault("OTEL_EXPORTER_ZIPKIN_ENDPOINT", "http://127.0.0.1:9411/api/v2/spans")
    env.setdefault("GATEWAY_JWT_SECRET", jwt_secret())
    env.setdefault("GATEWAY_ACCESS_TOKEN_MINUTES", "480")
    env.setdefault("GATEWAY_SERVICES", ",".join(service_names()))
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def jwt_secret() -> str:
    """A random signing secret made once per checkout, so tokens survive restarts."""
    path = RUN_DIR / "jwt_secret"
    if not path.exists():
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def service_names() -> list[str]:
    """Services to run: CONCILIARE_SERVICES (comma separated) or every one that exists."""
    wanted = os.environ.get("CONCILIARE_SERVICES")
    names = [n.strip() for n in wanted.split(",")] if wanted else list(SERVICES)
    return [name for name in names if (ROOT / "services" / name / "service.py").exists()]


def expected_processes() -> list[str]:
    return [f"{s}-{i}" for s in service_names() for i in range(1, SERVICES[s] + 1)] + ["gateway"]


def commands(gateway_workers: int) -> dict[str, tuple[list[str], dict[str, str]]]:
    """Each child's argv and its extra environment, by name."""
    found: dict[str, tuple[list[str], dict[str, str]]] = {}
    for service in service_names():
        for index in range(1, SERVICES[service] + 1):
            # The class is named explicitly: the module also imports the chassis base class.
            entry = f"services.{service}.service:{service.capitalize()}Service"
            argv = [PYTHON, "-m", "nameko", "run", "--config", "config/nameko.yaml", entry]
            extra = {"OTEL_SERVICE_NAME": f"{service}-service"}
            if service in MAX_WORKERS:
                extra["NAMEKO_MAX_WORKERS"] = str(MAX_WORKERS[service])
            found[f"{service}-{index}"] = (argv, extra)
    gateway = [
        PYTHON,
        "-m",
        "uvicorn",
        "gateway.main:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(GATEWAY_PORT),
        "--workers",
        str(gateway_workers),
        "--no-access-log",
    ]
    found["gateway"] = (gateway, {"OTEL_SERVICE_NAME": "gateway"})
    return found


# --- process helpers -------------------------------------------------------------------


def set_priority(pid: int, niceness: int) -> None:
    """Nice a child (an optimisation, never a reason to fail: without the right to raise a priority, it stays).

    Each child runs in a session of its own, and with the kernel's autogroup
    scheduling (on by default) the CPU is shared between sessions first: a process's
    own nice then only matters inside its session, so the session's is set too.
    """
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, pid, niceness)
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/autogroup").write_text(str(niceness))


def alive(pid: int) -> bool:
    """Running and not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def signal_group(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def tail(path: Path, lines: int = 15) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"


def read_state() -> dict[str, Any]:
    try:
        state: dict[str, Any] = json.loads(STATE_FILE.read_text())
        return state
    except (OSError, ValueError):
        return {}


def supervisor_pid() -> int | None:
    """The running supervisor's pid, if there is one (checked against its command line)."""
    try:
        pid = int(SUPERVISOR_PID_FILE.read_text().strip() or 0)
    except (OSError, ValueError):
        return None
    if pid and alive(pid) and "stack.py" in command_line(pid) and "supervise" in command_line(pid):
        return pid
    return None


# --- the supervisor --------------------------------------------------------------------


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    started_at: str = ""
    restarts: int = 0
    quick_failures: int = 0
    restart_at: float | None = None
    last_exit: int | None = None
    last_exit_at: str | None = None
    log_file: IO[bytes] | None = field(default=None, repr=False)

    def spawn(self) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        if self.log_file is None:
            # Kept open for the life of the child (and of its restarts).
            self.log_file = open(LOG_DIR / f"{self.name}.log", "ab")
        self.log_file.write(f"\n==== {self.name} starting at {now_iso()} (restart #{self.restarts})\n".encode())
        self.log_file.flush()
        self.process = subprocess.Popen(  # noqa: S603 - fixed argv built here
            self.argv,
            cwd=ROOT,
            env=self.env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.started, self.started_at, self.restart_at = time.monotonic(), now_iso(), None
        niceness = NICENESS.get(self.name.rsplit("-", 1)[0], 0)
        if niceness:
            set_priority(self.process.pid, niceness)
        log.info("started %s (pid %d)", self.name, self.process.pid)

    def backoff(self) -> float:
        return float(min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** max(0, self.quick_failures - 1)))

    def as_state(self) -> dict[str, Any]:
        running = self.process is not None and self.process.poll() is None
        return {
            "pid": self.process.pid if running and self.process else None,
            "state": "running" if running else "restarting",
            "started_at": self.started_at,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "last_exit_at": self.last_exit_at,
            "argv": self.argv,
        }


class Supervisor:
    def __init__(self, children: list[Child]) -> None:
        self.children = children
        self.stopping = False

    def request_stop(self, signum: int, _frame: Any) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        self.stopping = True

    def write_state(self) -> None:
        state = {
            "supervisor_pid": os.getpid(),
            "updated_at": now_iso(),
            "children": {child.name: child.as_state() for child in self.children},
        }
        temporary = STATE_FILE.with_suffix(".tmp")
        temporary.write_text(json.dumps(state, indent=2))
        temporary.replace(STATE_FILE)

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        for child in self.children:
            child.spawn()
        self.write_state()
        while not self.stopping:
            if self.check_children():
                self.write_state()
            time.sleep(POLL_INTERVAL)
        self.stop_children()

    def check_children(self) -> bool:
        """Notice exits and due restarts; True when something changed."""
        changed = False
        for child in self.children:
            if child.restart_at is not None:
                if time.monotonic() >= child.restart_at and not self.stopping:
                    child.restarts += 1
                    child.spawn()
                    changed = True
                continue
            code = child.process.poll() if child.process else None
            if child.process is None or code is None:
                continue
            # What the child left in its process group (uvicorn's workers, when its
            # master was killed) would hold its port against the restarted child.
            signal_group(child.process.pid, signal.SIGKILL)
            uptime = time.monotonic() - child.started
            child.quick_failures = 1 if uptime >= STABLE_AFTER else child.quick_failures + 1
            child.last_exit, child.last_exit_at = code, now_iso()
            delay = child.backoff()
            child.restart_at = time.monotonic() + delay
            log.warning(
                "%s (pid %d) exited unexpectedly with code %s after %.1fs; restarting in %.0fs (restart #%d)",
                child.name,
                child.process.pid,
                code,
                uptime,
                delay,
                child.restarts + 1,
            )
            changed = True
        return changed

    def stop_children(self) -> None:
        running = [c for c in self.children if c.process is not None and c.process.poll() is None]
        for child in running:
            assert child.process is not None
            signal_group(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        while time.monotonic() < deadline and any(c.process and c.process.poll() is None for c in running):
            time.sleep(POLL_INTERVAL)
        for child in running:
            assert child.process is not None
            if child.process.poll() is None:
                log.warning("%s (pid %d) did not stop in %.0fs: SIGKILL", child.name, child.process.pid, STOP_GRACE)
                signal_group(child.process.pid, signal.SIGKILL)
                child.process.wait()
            log.info("stopped %s (pid %d)", child.name, child.process.pid)
        STATE_FILE.unlink(missing_ok=True)
        SUPERVISOR_PID_FILE.unlink(missing_ok=True)


def supervise(args: argparse.Namespace) -> None:
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s [supervisor] %(message)s",
        stream=sys.stdout,
    )
    SUPERVISOR_PID_FILE.write_text(str(os.getpid()))
    env = environment()
    children = [
        Child(name=name, argv=argv, env=env | extra) for name, (argv, extra) in commands(args.gateway_workers).items()
    ]
    log.info("supervising %s", ", ".join(child.name for child in children))
    Supervisor(children).run()
    log.info("stopped")


# --- the commands ----------------------------------------------------------------------


def start(args: argparse.Namespace) -> None:
    stop_legacy()
    pid = supervisor_pid()
    fresh = pid is None
    if pid is not None:
        print(f"    supervisor already running (pid {pid})")
    else:
        if read_state():  # a supervisor that died without stopping its processes
            stop_supervisor()
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        STATE_FILE.unlink(missing_ok=True)
        with open(LOG_DIR / "supervisor.log", "ab") as output:
            process = subprocess.Popen(  # noqa: S603 - fixed argv built here
                [PYTHON, str(Path(__file__).resolve()), "supervise", "--gateway-workers", str(args.gateway_workers)],
                cwd=ROOT,
                env=environment(),
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        print(f"    started the supervisor (pid {process.pid}, log {LOG_DIR / 'supervisor.log'})")
        pid = process.pid
    state = wait_ready(args.timeout, pid, fail_fast=fresh)
    for name, child in sorted(read_state().get("children", {}).items()):
        print(f"    {name:<14} pid {child.get('pid')}  log {LOG_DIR / (name + '.log')}")
    print(f"    gateway ready: {state.get('checks')}")


def wait_ready(timeout: float, pid: int, fail_fast: bool) -> dict[str, object]:
    """Wait for the gateway's readiness; with ``fail_fast``, stop if a process dies during start-up."""
    deadline = time.monotonic() + timeout
    last: dict[str, object] = {}
    while time.monotonic() < deadline:
        if not alive(pid):
            raise SystemExit(f"the supervisor exited during start-up:\n{tail(LOG_DIR / 'supervisor.log')}")
        children = read_state().get("children", {})
        dead = [name for name, child in children.items() if child.get("last_exit") is not None]
        if dead and fail_fast:
            tails = "\n".join(f"--- {n}.log\n" + tail(LOG_DIR / f"{n}.log") for n in dead)
            stop_supervisor()
            raise SystemExit(f"{', '.join(dead)} exited during start-up:\n{tails}")
        try:
            with urllib.request.urlopen(f"{GATEWAY_URL}/v1/ready", timeout=5) as response:  # noqa: S310
                return dict(json.load(response))
        except urllib.error.HTTPError as exc:
            with contextlib.suppress(ValueError):
                last = dict(json.load(exc))
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(1)
    raise SystemExit(f"the gateway did not become ready in {timeout:.0f}s: {last or 'no answer'}; see {LOG_DIR}")


def stop_supervisor() -> None:
    """Stop the supervisor (it stops its children); clean up after one that was killed."""
    state = read_state()
    pid = supervisor_pid()
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE + 10
        while time.monotonic() < deadline and alive(pid):
            time.sleep(0.2)
        if alive(pid):
            print(f"    supervisor (pid {pid}) did not stop: SIGKILL")
            os.kill(pid, signal.SIGKILL)
        print(f"    stopped the supervisor (pid {pid}) and its processes")
    # Children of a supervisor that died without stopping them (e.g. SIGKILL).
    for name, child in state.get("children", {}).items():
        child_pid = child.get("pid")
        argv = " ".join(child.get("argv") or [])
        if child_pid and alive(child_pid) and argv and command_line(child_pid).strip() == argv:
            signal_group(child_pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_GRACE
            while time.monotonic() < deadline and alive(child_pid):
                time.sleep(0.2)
            signal_group(child_pid, signal.SIGKILL)
            print(f"    stopped {name} (pid {child_pid}), left by a supervisor that died")
    STATE_FILE.unlink(missing_ok=True)
    SUPERVISOR_PID_FILE.unlink(missing_ok=True)


def stop_legacy() -> None:
    """Stop processes recorded in pid files by the stack.py that predates the supervisor."""
    if not LEGACY_PID_DIR.exists():
        return
    for pid_file in sorted(LEGACY_PID_DIR.glob("*.pid")):
        with contextlib.suppress(ValueError, OSError):
            pid = int(pid_file.read_text().strip() or 0)
            if pid and alive(pid) and ("nameko" in command_line(pid) or "uvicorn" in command_line(pid)):
                signal_group(pid, signal.SIGTERM)
                deadline = time.monotonic() + STOP_GRACE
                while time.monotonic() < deadline and alive(pid):
                    time.sleep(0.2)
                signal_group(pid, signal.SIGKILL)
                print(f"    stopped {pid_file.stem} (pid {pid}, started before the supervisor)")
        pid_file.unlink(missing_ok=True)


def stop(_: argparse.Namespace) -> None:
    stop_legacy()
    if supervisor_pid() is None and not read_state():
        print("    nothing running")
        return
    stop_supervisor()


def status(args: argparse.Namespace) -> None:
    pid = supervisor_pid()
    state = read_state() if pid is not None else {}
    if args.json:
        print(json.dumps({"supervisor_pid": pid, "children": state.get("children", {})}, indent=2))
        return
    print(f"    supervisor     {'up (pid ' + str(pid) + ')' if pid else 'down'}")
    children = state.get("children", {})
    for name in expected_processes():
        child = children.get(name)
        if child is None:
            print(f"    {name:<14} down")
            continue
        line = f"    {name:<14} {child['state']}"
        if child.get("pid"):
            line += f" (pid {child['pid']}, since {child['started_at']})"
        line += f", restarts {child['restarts']}"
        if child.get("last_exit") is not None:
            line += f", last exit {child['last_exit']} at {child['last_exit_at']}"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    workers = int(os.environ.get("GATEWAY_WORKERS", "2"))
    start_parser = sub.add_parser("start")
    start_parser.add_argument("--timeout", type=float, default=90)
    start_parser.add_argument("--gateway-workers", type=int, default=workers)
    start_parser.set_defaults(func=start)
    supervise_parser = sub.add_parser("supervise")
    supervise_parser.add_argument("--gateway-workers", type=int, default=workers)
    supervise_parser.set_defaults(func=supervise)
    sub.add_parser("stop").set_defaults(func=stop)
    status_parser = sub.add_parser("status")
    status_parser.add_argument("--json", action="store_true", help="machine-readable state")
    status_parser.set_defaults(func=status)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
