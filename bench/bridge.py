"""Benchmark the sync-to-async bridge against the alternatives, in one run on one machine.

(a) In-process: calls per second of one database round-trip through the bridge, the seed
    pattern (loop dance + new engine per call), ``asyncio.run`` and asgiref's ``async_to_sync``
    (both with a new engine per call), and how many connections each opened.
(b) Through a real worker (prefork): tasks per second, bridge versus seed pattern.

Usage:  .venv/bin/python bench/bridge.py [--calls 300] [--tasks 500] [--concurrency 2]
Prints a table, then one line:
    bridge_vs_seed_inprocess=X.XX bridge_vs_seed_worker=Y.YY
    connections_opened_bridge=N connections_opened_seed=M
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import use_bench_database  # noqa: E402

# A database of its own, migrated here: never the working data, and ready on a new machine.
use_bench_database("fca_bench_bridge")

import django  # noqa: E402
from django.core.management import call_command  # noqa: E402

django.setup()
call_command("migrate", verbosity=0)

from sqlalchemy import event  # noqa: E402
from sqlalchemy.pool import Pool  # noqa: E402

from bench.patterns import PATTERNS  # noqa: E402
from devtools.workers import start_worker, stop_worker  # noqa: E402
from documents.ingestion import rag_config  # noqa: E402
from fca_site.celery import app  # noqa: E402
from rag import bridge  # noqa: E402

_connections = 0


@event.listens_for(Pool, "connect")
def _count_connection(*_args: object) -> None:
    global _connections
    _connections += 1


def in_process(calls: int) -> dict[str, dict[str, float]]:
    global _connections
    config = rag_config()
    results: dict[str, dict[str, float]] = {}
    for name, call in PATTERNS.items():
        for _ in range(10):  # warm-up: imports, first loop, first connection
            call(config)
        _connections = 0
        started = time.perf_counter()
        for _ in range(calls):
            call(config)
        elapsed = time.perf_counter() - started
        results[name] = {"per_second": calls / elapsed, "connections": _connections}
    bridge.shutdown()
    return results


def through_worker(tasks: int, concurrency: int) -> dict[str, dict[str, float]]:
    broker = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/14")
    queue = f"fca-bench-{uuid.uuid4().hex[:8]}"
    app.conf.broker_url = broker
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as log_dir:
        worker = start_worker(
            Path(log_dir),
            broker_url=broker,
            queue=queue,
            concurrency=concurrency,
            extra_env={"CELERY_EXTRA_IMPORTS": "bench.worker_tasks", "DJANGO_LOG_LEVEL": "WARNING"},
        )
        try:
            for name, task in (
                ("bridge", "bench.bridge_round_trip"),
                ("seed", "bench.seed_round_trip"),
            ):
                for warm in [app.send_task(task, queue=queue) for _ in range(concurrency * 4)]:
                    warm.get(timeout=120)
                started = time.time()
                sent = [app.send_task(task, queue=queue) for _ in range(tasks)]
                outcomes = [result.get(timeout=600) for result in sent]
                elapsed = max(o["done"] for o in outcomes) - started
                results[name] = {
                    "per_second": tasks / elapsed,
                    "connections": len({o["backend"] for o in outcomes}),
                }
        finally:
            stop_worker(worker)
    return results


def write_table(
    out, title: str, rows: dict[str, dict[str, float]], rate: str, connections: str
) -> None:
    """One table: each pattern's rate, its ratio to the seed pattern, and its connections."""
    out.write(f"\n{title}\n{'pattern':<16}{rate:>10}{'vs seed':>10}{connections:>22}\n")
    for name, figures in rows.items():
        ratio = figures["per_second"] / rows["seed"]["per_second"]
        out.write(
            f"{name:<16}{figures['per_second']:>10.1f}{ratio:>10.2f}{figures['connections']:>22}\n"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="in-process calls per pattern")
    parser.add_argument("--tasks", type=int, default=500, help="worker tasks per pattern")
    parser.add_argument("--concurrency", type=int, default=2, help="worker prefork children")
    args = parser.parse_args()

    local = in_process(args.calls)
    remote = through_worker(args.tasks, args.concurrency)

    out = sys.stdout
    write_table(
        out,
        f"In-process, {args.calls} calls of one database round-trip each",
        local,
        "calls/s",
        "connections opened",
    )
    write_table(
        out,
        f"Through a prefork worker (concurrency {args.concurrency}), {args.tasks} tasks",
        remote,
        "tasks/s",
        "backends seen",
    )
    inprocess = local["bridge"]["per_second"] / local["seed"]["per_second"]
    worker = remote["bridge"]["per_second"] / remote["seed"]["per_second"]
    out.write(
        f"\nbridge_vs_seed_inprocess={inprocess:.2f} bridge_vs_seed_worker={worker:.2f}"
        f" connections_opened_bridge={remote['bridge']['connections']}"
        f" connections_opened_seed={remote['seed']['connections']}\n"
    )


if __name__ == "__main__":
    main()
