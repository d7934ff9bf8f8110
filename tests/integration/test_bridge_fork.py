"""A process that already has a bridge loop and a pooled connection can fork safely."""

from __future__ import annotations

import json
import os

import pytest

from documents.ingestion import rag_config
from tests.worker_tasks import _probe

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def run_child(rag_bridge, config) -> dict:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report one probe (or the error) through the pipe, then leave at once
        os.close(read_fd)
        try:
            payload = {"ok": rag_bridge.run(_probe(config))}
        except BaseException as exc:  # noqa: BLE001 - everything must reach the parent
            payload = {"error": repr(exc)}
        with os.fdopen(write_fd, "w") as pipe:
            pipe.write(json.dumps(payload))
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return {**json.loads(data), "pid": pid}


def test_children_forked_after_the_loop_and_engine_exist_build_their_own(rag_bridge):
    config = rag_config()
    parent_before = rag_bridge.run(_probe(config))

    children = [run_child(rag_bridge, config) for _ in range(3)]

    for child in children:
        assert "ok" in child, child
        probe = child["ok"]
        assert probe["pid"] == child["pid"] != parent_before["pid"]
        # A new connection of the child's own: the parent's was not shared, nor closed.
        assert probe["backend"] != parent_before["backend"]
    parent_after = rag_bridge.run(_probe(config))
    assert parent_after == parent_before
