"""The quick path's deadlines: one thread for the process, callbacks only for calls that outlive them."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from flyte_private_registry.distribution._watchdog import Watchdog


def _threads() -> int:
    return sum(thread.name == "flyte-private-registry-deadlines" for thread in threading.enumerate())


def test_a_call_finished_in_time_never_sees_its_callback() -> None:
    watchdog, fired = Watchdog(), threading.Event()
    key = watchdog.arm(time.monotonic() + 0.2, fired.set)
    assert watchdog.disarm(key) is False
    assert not fired.wait(0.5)


def test_a_call_past_its_deadline_gets_its_callback_once_and_is_told_so() -> None:
    watchdog, calls = Watchdog(), []
    key = watchdog.arm(time.monotonic() + 0.05, lambda: calls.append(time.monotonic()))
    time.sleep(0.4)
    assert len(calls) == 1
    assert watchdog.disarm(key) is True


def test_an_earlier_deadline_armed_later_wakes_the_sleeping_thread() -> None:
    watchdog, fired = Watchdog(), threading.Event()
    late = watchdog.arm(time.monotonic() + 60, lambda: None)  # the thread now sleeps for a minute
    armed = time.monotonic()
    watchdog.arm(armed + 0.05, fired.set)
    assert fired.wait(2)
    assert time.monotonic() - armed < 1
    assert watchdog.disarm(late) is False


def test_thousands_of_calls_share_one_thread() -> None:
    watchdog, before = Watchdog(), _threads()
    for _ in range(2000):
        assert watchdog.disarm(watchdog.arm(time.monotonic() + 5, lambda: None)) is False
    assert _threads() == before + 1


def test_a_failing_callback_does_not_stop_the_others() -> None:
    watchdog, fired = Watchdog(), threading.Event()

    def boom() -> None:
        raise RuntimeError("callback failed")

    now = time.monotonic()
    watchdog.arm(now + 0.02, boom)
    watchdog.arm(now + 0.04, fired.set)
    assert fired.wait(2)
    later = threading.Event()
    watchdog.arm(time.monotonic() + 0.02, later.set)  # and the thread still serves new calls
    assert later.wait(2)


def test_a_forked_child_gets_its_own_thread() -> None:
    """The shared watchdog is reset in a child: the parent's thread does not exist there."""
    from flyte_private_registry.distribution._watchdog import WATCHDOG

    WATCHDOG.disarm(WATCHDOG.arm(time.monotonic() + 5, lambda: None))  # the parent's thread runs
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if a deadline fires there
        fired = threading.Event()
        WATCHDOG.arm(time.monotonic() + 0.05, fired.set)
        os._exit(0 if fired.wait(2) else 1)
    deadline = time.monotonic() + 10
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    if done[0] == 0:  # a child stuck on a lock the parent's thread held at the fork
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung arming a deadline")
    assert os.waitstatus_to_exitcode(done[1]) == 0, "no deadline fired in the forked child"
