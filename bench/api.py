"""Search through the HTTP API against the same searches made directly through the service.

The index is bench/search.py's (100,000 chunks, hash embedder, database fca_bench_search,
loaded once). The API runs under gunicorn's asgi worker (one worker process, as
docker-compose.yml serves it, minus the other workers), reached over loopback by 1, 8 and 32
concurrent clients for --seconds each; the direct figure runs the same searches with as many
concurrent tasks on the service in this process (the limit HTTP can approach). The clients are
bench/http_client.py's kept-alive connections: on two cores whatever a client spends is taken
from the server it measures (httpx would cost 4.5 ms of CPU a request). Each figure is the best
of --repeat runs, the two paths measured in turn.

Usage:  .venv/bin/python bench/api.py [--chunks 100000] [--seconds 10] [--repeat 1]
Last line:  api_search_rps_c8=X api_p95_ms_c8=Y api_vs_direct_c8=Z
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.http_client import KeepAliveClient  # noqa: E402
from bench.search import prepare_index  # noqa: E402

CONCURRENCY = (1, 8, 32)
K = 10
MODE = "hybrid"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_api(log_dir: Path):
    """gunicorn's asgi worker on a free loopback port, against the bench database."""
    from devtools.workers import ProjectProcess, project_env, spawn, wait_until_ready

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = project_env(
        broker_url=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"),
        queue="fca-bench-api",
        extra_env={"DJANGO_DEBUG": "0", "RAG_EMBEDDER": "hash", "RAG_API_RATE_LIMIT": "0"},
    )
    command = [
        sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
        "--workers", "1", "--worker-class", "asgi", "fca_site.asgi:application",
    ]  # fmt: skip
    log_path = log_dir / "gunicorn-asgi.log"
    server = ProjectProcess(process=spawn(command, env=env, log_path=log_path), log_path=log_path)

    def answers() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/api/v1/openapi.json", timeout=2) as response:  # noqa: S310
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    wait_until_ready(server, answers, what="gunicorn asgi", timeout=60, poll_every=0.3,
                     stop_timeout=10)  # fmt: skip
    return server, url


async def drive(search, queries: list[str], clients: int, seconds: float) -> tuple[float, list]:
    """``clients`` concurrent loops calling ``search(query)`` until ``seconds`` have passed:
    requests per second and the latencies (ms)."""
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []
    rng = random.Random(clients)

    async def client() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await search(rng.choice(queries))
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return len(latencies) / (time.perf_counter() - started), latencies


async def measure(url: str, key: str, queries: list[str], args) -> dict:
    from documents import ingestion

    async def direct(query: str) -> None:
        await ingestion.search_async(
            query, k=K, mode=MODE, filters=ingestion.SearchFilters(), on_server_loop=True
        )

    http = KeepAliveClient(
        url, headers={"Authorization": f"Bearer {key}"}, connections=max(CONCURRENCY)
    )

    async def over_http(query: str) -> None:
        await http.post_json("/api/v1/search", {"query": query, "k": K})

    paths = (("api", over_http), ("direct", direct))
    figures = {}
    try:
        for clients in CONCURRENCY:
            for _, search in paths:
                await drive(search, queries, clients, 1.0)  # warm: connections, caches
            best: dict[str, tuple[float, list[float]]] = {}
            for _ in range(args.repeat):  # the two paths in turn, so drift hits both alike
                for name, search in paths:
                    rps, latencies = await drive(search, queries, clients, args.seconds)
                    if name not in best or rps > best[name][0]:
                        best[name] = (rps, latencies)
            for name, (rps, latencies) in best.items():
                figures[(name, clients)] = (
                    rps,
                    statistics.median(latencies),
                    statistics.quantiles(latencies, n=100)[94],
                )
    finally:
        http.close()
    await ingestion.close_running_loop_engines()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000, help="chunks in the index")
    parser.add_argument("--seconds", type=float, default=10.0, help="per concurrency level")
    parser.add_argument("--repeat", type=int, default=1, help="runs per figure (best kept)")
    args = parser.parse_args()
    rng = random.Random(11)
    sentences = prepare_index(args.chunks, rng)
    from devtools.workers import stop_process_group
    from documents.api_keys import api_key_create

    queries = [rng.choice(sentences) for _ in range(500)]
    key = api_key_create(name=f"bench-{os.getpid()}").key
    with tempfile.TemporaryDirectory() as logs:
        server, url = start_api(Path(logs))
        try:
            figures = asyncio.run(measure(url, key, queries, args))
        finally:
            stop_process_group(server, timeout=10)

    out = sys.stdout
    out.write(f"\n{args.chunks} chunks, {MODE} top {K}, {args.seconds:g} s per level, "
              f"best of {args.repeat}\n")  # fmt: skip
    out.write(f"{'clients':>7} {'path':<7}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}\n")
    for (name, clients), (rps, p50, p95) in sorted(figures.items(), key=lambda f: f[0][::-1]):
        out.write(f"{clients:>7} {name:<7}{rps:>9.1f}{p50:>9.1f}{p95:>9.1f}\n")
    api_rps, _, api_p95 = figures[("api", 8)]
    ratio = api_rps / figures[("direct", 8)][0]
    out.write(f"\napi_search_rps_c8={api_rps:.1f} api_p95_ms_c8={api_p95:.1f} "
              f"api_vs_direct_c8={ratio:.2f}\n")  # fmt: skip


if __name__ == "__main__":
    main()
