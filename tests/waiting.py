"""Waiting on a condition with a deadline (never sleeping for timing): what the tests share."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from devtools.workers import ProjectProcess

T = TypeVar("T")


def wait_until(condition: Callable[[], T], what: str, timeout: float = 60.0) -> T:
    """Poll ``condition`` until it returns something true, and return that; fail saying
    ``what`` never happened."""
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.05)


def wait_for_log(process: ProjectProcess, text: str, *, timeout: float = 90.0) -> None:
    """Wait until ``text`` appears in the process's log; fail with the log if it exits first or
    the deadline passes."""
    deadline = time.monotonic() + timeout
    while text not in process.log():
        if process.process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not in the log:\n{process.log()[-3000:]}")
        time.sleep(0.2)
