"""Two workers on two "hosts" (network namespaces) that share nothing but the broker, the
database and the bucket ingest the corpus between them: nothing lost, nothing duplicated.

Each namespace is joined to this host by a veth pair in a private range of its own
(10.213.41.0/24, 10.213.42.0/24) and routes only to the host's end. The broker (a redis-server
of the test's own) and the S3 server (moto) listen on 10.213.41.1 only, which the second
namespace reaches through its own veth: a packet for a local address is delivered locally.
PostgreSQL (the embedded server) is reached through its unix socket: a filesystem path, which
network namespaces do not separate (a worker on a real second host would use DATABASE_URL over
TCP). The web side is ``manage.py ingest`` in this host's namespace.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.workers import ROOT, ProjectProcess, project_env, spawn, stop_process_group
from documents.models import Chunk, Document
from tests.live_server import free_port
from tests.s3_server import S3Server, start_s3_server, stop_s3_server
from tests.waiting import wait_for_log

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

HOST_ADDRESS = "10.213.41.1"
SUBNETS = ("10.213.41", "10.213.42")


def needs_root_and_ip() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces need root"
    if not shutil.which("ip"):
        return "the ip command (iproute2) is not installed"
    return None


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture
def namespaces() -> Iterator[list[str]]:
    reason = needs_root_and_ip()
    if reason:
        pytest.skip(reason)
    tag = uuid.uuid4().hex[:5]
    names = [f"fca-{tag}-{n}" for n in (1, 2)]
    try:
        for name, subnet, n in zip(names, SUBNETS, (1, 2), strict=True):
            host_end, ns_end = f"fcah{tag}{n}", f"fcan{tag}{n}"
            ip("netns", "add", name)
            ip("link", "add", host_end, "type", "veth", "peer", "name", ns_end)
            ip("link", "set", ns_end, "netns", name)
            ip("addr", "add", f"{subnet}.1/24", "dev", host_end)
            ip("link", "set", host_end, "up")
            ip("-n", name, "addr", "add", f"{subnet}.2/24", "dev", ns_end)
            ip("-n", name, "link", "set", ns_end, "up")
            ip("-n", name, "link", "set", "lo", "up")
            ip("-n", name, "route", "add", "default", "via", f"{subnet}.1")
        yield names
    finally:
        for name in names:
            # Deleting the namespace destroys its veth end, and with it the host's end.
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)


FINISHED = {Document.Status.READY, Document.Status.FAILED}


def expected_outcomes(corpus) -> dict[Path, set[Document.Status]]:
    """What the manifest settles for each file sent: plenty of text is ready; a file pypdf
    cannot open ends finished either way (PDFium reads some of them). The image-only and nearly
    textless files, whose fate is OCR's, are left out, as are the longest books, to keep the run
    short."""
    outcomes = {}
    for entry in corpus.values():
        if entry.page_count is not None and 500 <= entry.extractable_chars < 300_000:
            outcomes[entry.path] = {Document.Status.READY}
        elif entry.pages.startswith("error") and entry.path.stat().st_size > 0:
            outcomes[entry.path] = FINISHED
    return outcomes


def test_two_workers_in_separate_network_namespaces_ingest_the_corpus_between_them(
    namespaces, corpus, tmp_path
):
    processes: list[ProjectProcess] = []
    s3: S3Server | None = None
    try:
        redis_port = free_port()
        redis_log = tmp_path / "redis.log"
        redis_server = ProjectProcess(
            spawn(
                ["redis-server", "--bind", HOST_ADDRESS, "--port", str(redis_port), "--save", "",
                 "--appendonly", "no", "--protected-mode", "no"],
                env=dict(os.environ), log_path=redis_log,
            ),
            redis_log,
        )  # fmt: skip
        processes.append(redis_server)
        wait_for_log(redis_server, "Ready to accept connections")
        s3 = start_s3_server(tmp_path, free_port(), host=HOST_ADDRESS)
        broker = f"redis://{HOST_ADDRESS}:{redis_port}/0"
        queue = f"fca-two-hosts-{uuid.uuid4().hex[:6]}"
        spools = []
        for n, namespace in enumerate(namespaces, start=1):
            media, spool = tmp_path / f"host{n}-media", tmp_path / f"host{n}-spool"
            media.mkdir()
            spools.append(spool)
            env = project_env(
                broker_url=broker,
                queue=queue,
                extra_env=s3.env(DJANGO_MEDIA_ROOT=str(media), RAG_SPOOL_DIR=str(spool)),
            )
            log_path = tmp_path / f"worker-host{n}.log"
            command = [
                "ip", "netns", "exec", namespace, sys.executable, "-m", "celery", "-A",
                "fca_site", "worker", "--pool", "prefork", "--concurrency", "1", "--hostname",
                f"host{n}@{namespace}", "--queues", queue, "--without-gossip", "--without-mingle",
                "--loglevel", "INFO",
            ]  # fmt: skip
            worker = ProjectProcess(spawn(command, env=env, log_path=log_path), log_path)
            processes.append(worker)
        for worker in processes[1:]:
            wait_for_log(worker, "ready.")

        outcomes = expected_outcomes(corpus)
        web_env = project_env(
            broker_url=broker,
            queue=queue,
            extra_env=s3.env(DJANGO_MEDIA_ROOT=str(tmp_path / "web-media")),
        )
        ingest = subprocess.run(
            [sys.executable, "manage.py", "ingest", *map(str, outcomes), "--wait"],
            cwd=ROOT, env=web_env, capture_output=True, text=True, timeout=150,
        )  # fmt: skip
        report = ingest.stdout + ingest.stderr
        assert ingest.returncode != 0, report  # some (the broken files) failed

        assert Document.objects.count() == len(outcomes), report
        for path, statuses in outcomes.items():
            document = Document.objects.get(title=path.stem.replace("_", " "))
            assert document.status in statuses, (path.name, document.error_code, report)
            ordinals = list(
                Chunk.objects.filter(document=document)
                .order_by("ordinal")
                .values_list("ordinal", flat=True)
            )
            assert ordinals == list(range(document.chunk_count)), path.name
            assert s3.exists(document.file.name), path.name
        # Both hosts took part, each read its files from the bucket only, and left no copy.
        worker_logs = [worker.log() for worker in processes[1:]]
        for n, log in enumerate(worker_logs, start=1):
            assert "ingested document_id" in log, f"host {n} ingested nothing:\n{log}"
        for spool in spools:
            assert not list(spool.iterdir())
        for n in (1, 2):
            assert not list((tmp_path / f"host{n}-media").iterdir())
    finally:
        for process in reversed(processes):
            stop_process_group(process, timeout=20)
        if s3 is not None:
            stop_s3_server(s3)
