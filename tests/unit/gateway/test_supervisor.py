"""The supervisor of `make run` (scripts/stack.py): restarts with a backoff that doubles, then resets."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def stack() -> ModuleType:
    spec = importlib.util.spec_from_file_location("conciliare_stack", ROOT / "scripts" / "stack.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["conciliare_stack"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def no_signals(stack: ModuleType, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Signals the supervisor would send, recorded instead of sent (the pids here are made up)."""
    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(stack, "signal_group", lambda pid, signum: sent.append((pid, signum)))
    return sent


class ExitedProcess:
    def __init__(self, code: int, pid: int = 4242) -> None:
        self.code = code
        self.pid = pid

    def poll(self) -> int:
        return self.code


def crash(stack: ModuleType, child: Any, uptime: float, clock: list[float]) -> float:
    """Let ``child`` exit after ``uptime`` seconds; return the delay before its restart."""
    child.process = ExitedProcess(-9)
    child.started = clock[0] - uptime
    child.restart_at = None
    supervisor = stack.Supervisor([child])
    assert supervisor.check_children()
    assert child.last_exit == -9 and child.restart_at is not None
    return float(child.restart_at - clock[0])


def test_quick_failures_double_the_backoff_up_to_its_cap(stack: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(stack.time, "monotonic", lambda: clock[0])
    child = stack.Child(name="partners-1", argv=["nameko"], env={})
    delays = [round(crash(stack, child, uptime=2, clock=clock)) for _ in range(8)]
    assert delays == [1, 2, 4, 8, 16, 30, 30, 30]


def test_a_child_that_stayed_up_restarts_after_the_first_delay_again(
    stack: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(stack.time, "monotonic", lambda: clock[0])
    child = stack.Child(name="partners-1", argv=["nameko"], env={})
    for _ in range(4):
        crash(stack, child, uptime=2, clock=clock)
    assert round(crash(stack, child, uptime=stack.STABLE_AFTER + 1, clock=clock)) == 1


def test_an_exit_clears_what_the_child_left_in_its_process_group(
    stack: ModuleType, monkeypatch: pytest.MonkeyPatch, no_signals: list[tuple[int, int]]
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(stack.time, "monotonic", lambda: clock[0])
    child = stack.Child(name="gateway", argv=["uvicorn"], env={})
    crash(stack, child, uptime=2, clock=clock)
    assert no_signals == [(4242, stack.signal.SIGKILL)]


def test_a_due_restart_spawns_the_child_again_and_counts_it(stack: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(stack.time, "monotonic", lambda: clock[0])
    spawned: list[str] = []
    child = stack.Child(name="gateway", argv=["uvicorn"], env={})
    monkeypatch.setattr(child, "spawn", lambda: spawned.append(child.name))
    crash(stack, child, uptime=2, clock=clock)
    supervisor = stack.Supervisor([child])
    assert not supervisor.check_children()  # not yet due
    clock[0] += 1.5
    assert supervisor.check_children()
    assert spawned == ["gateway"] and child.restarts == 1


def test_no_restart_once_stopping(stack: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(stack.time, "monotonic", lambda: clock[0])
    child = stack.Child(name="catalog-1", argv=["nameko"], env={})
    monkeypatch.setattr(child, "spawn", lambda: pytest.fail("spawned while stopping"))
    crash(stack, child, uptime=2, clock=clock)
    supervisor = stack.Supervisor([child])
    supervisor.stopping = True
    clock[0] += 60
    supervisor.check_children()
    assert child.restarts == 0
