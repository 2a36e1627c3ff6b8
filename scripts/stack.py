"""Supervise the application processes of `make run`: services and gateway.

Starts each nameko service (one or more instances) and the gateway as background
processes with pid files under `.run/`, waits until the gateway reports ready, and
stops exactly what it started. Servers (RabbitMQ, FerretDB, MinIO, Zipkin) are
handled by `scripts/infra/*.sh`, not here.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN_DIR = Path(os.environ.get("CONCILIARE_RUN_DIR", ROOT / ".run"))
PID_DIR = RUN_DIR / "pids"
LOG_DIR = RUN_DIR / "logs"
PYTHON = sys.executable
GATEWAY_PORT = int(os.environ.get("GATEWAY_PORT", "8000"))
GATEWAY_URL = f"http://127.0.0.1:{GATEWAY_PORT}"
# Services started by `make run`, with how many instances of each. Several
# instances of a service share its queue and its database.
SERVICES = {"partners": 1, "catalog": 1, "enrolment": 2}


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


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running() -> dict[str, int]:
    found = {}
    for pid_file in sorted(PID_DIR.glob("*.pid")) if PID_DIR.exists() else []:
        pid = int(pid_file.read_text().strip() or 0)
        if pid and alive(pid):
            found[pid_file.stem] = pid
        else:
            pid_file.unlink(missing_ok=True)
    return found


def spawn(name: str, command: list[str], env: dict[str, str]) -> None:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    PID_DIR.mkdir(parents=True, exist_ok=True)
    log = open(LOG_DIR / f"{name}.log", "ab")
    process = subprocess.Popen(  # noqa: S603 - fixed argv built here
        command,
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    (PID_DIR / f"{name}.pid").write_text(str(process.pid))
    print(f"    started {name} (pid {process.pid}, log {LOG_DIR / (name + '.log')})")


def service_names() -> list[str]:
    """Services to run: CONCILIARE_SERVICES (comma separated) or every one that exists."""
    wanted = os.environ.get("CONCILIARE_SERVICES")
    names = [n.strip() for n in wanted.split(",")] if wanted else list(SERVICES)
    return [name for name in names if (ROOT / "services" / name / "service.py").exists()]


def wait_ready(timeout: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    last: dict[str, object] = {}
    while time.monotonic() < deadline:
        dead = [name for name in expected_processes() if name not in running()]
        if dead:
            tails = "\n".join(f"--- {n}.log\n" + tail(LOG_DIR / f"{n}.log") for n in dead)
            raise SystemExit(f"{', '.join(dead)} exited during start-up:\n{tails}")
        try:
            with urllib.request.urlopen(f"{GATEWAY_URL}/v1/ready", timeout=5) as response:  # noqa: S310
                return dict(json.load(response))
        except urllib.error.HTTPError as exc:
            last = dict(json.load(exc))
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(1)
    raise SystemExit(f"the gateway did not become ready in {timeout:.0f}s: {last or 'no answer'}; see {LOG_DIR}")


def expected_processes() -> list[str]:
    return [f"{s}-{i}" for s in service_names() for i in range(1, SERVICES[s] + 1)] + ["gateway"]


def tail(path: Path, lines: int = 15) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"


def start(args: argparse.Namespace) -> None:
    already = running()
    env = environment()
    for service in service_names():
        for index in range(1, SERVICES[service] + 1):
            name = f"{service}-{index}"
            if name in already:
                print(f"    {name} already running (pid {already[name]})")
                continue
            # The class is named explicitly: the module also imports the chassis base class.
            entry = f"services.{service}.service:{service.capitalize()}Service"
            command = [PYTHON, "-m", "nameko", "run", "--config", "config/nameko.yaml", entry]
            spawn(name, command, env | {"OTEL_SERVICE_NAME": f"{service}-service"})
    if "gateway" in already:
        print(f"    gateway already running (pid {already['gateway']})")
    else:
        command = [
            PYTHON,
            "-m",
            "uvicorn",
            "gateway.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(GATEWAY_PORT),
            "--workers",
            str(args.gateway_workers),
            "--no-access-log",
        ]
        spawn("gateway", command, env | {"OTEL_SERVICE_NAME": "gateway"})
    state = wait_ready(args.timeout)
    print(f"    gateway ready: {state.get('checks')}")


def stop(_: argparse.Namespace) -> None:
    processes = running()
    for pid in processes.values():
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(alive(pid) for pid in processes.values()):
        time.sleep(0.2)
    for name, pid in processes.items():
        if alive(pid):
            os.killpg(pid, signal.SIGKILL)
        (PID_DIR / f"{name}.pid").unlink(missing_ok=True)
        print(f"    stopped {name} (pid {pid})")


def status(_: argparse.Namespace) -> None:
    processes = running()
    for name in expected_processes():
        print(f"    {name:<14} {'up (pid ' + str(processes[name]) + ')' if name in processes else 'down'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    start_parser = sub.add_parser("start")
    start_parser.add_argument("--timeout", type=float, default=90)
    start_parser.add_argument("--gateway-workers", type=int, default=int(os.environ.get("GATEWAY_WORKERS", "2")))
    start_parser.set_defaults(func=start)
    sub.add_parser("stop").set_defaults(func=stop)
    sub.add_parser("status").set_defaults(func=status)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
