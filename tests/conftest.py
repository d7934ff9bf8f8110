"""Shared fixtures: corpus files, an isolated media folder and broker queue, a staff user."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from devtools.corpus import CORPUS_DIR, CorpusEntry, load_manifest

ROOT = Path(__file__).resolve().parent.parent

# One Redis database and one queue per test run: a developer's own worker on the same Redis
# never steals the tests' messages, and two test runs never see each other's.
TEST_BROKER_URL = os.environ.get("FCA_TEST_BROKER_URL", "redis://127.0.0.1:6379/15")
TEST_QUEUE = f"fca-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def corpus() -> dict[str, CorpusEntry]:
    """The real-world PDF corpus in ../shared/corpus (tests skip, saying why, if it is absent)."""
    entries = load_manifest()
    if not entries:
        pytest.skip(f"PDF corpus not found at {CORPUS_DIR} (set FCA_CORPUS_DIR to its folder)")
    return entries


@pytest.fixture(scope="session", autouse=True)
def _isolated_media_and_queue(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Uploads go to a temporary folder and messages to this run's own queue."""
    from django.conf import settings

    from fca_site.celery import app

    media = tmp_path_factory.mktemp("media")
    settings.MEDIA_ROOT = media
    os.environ["DJANGO_MEDIA_ROOT"] = str(media)
    app.conf.broker_url = TEST_BROKER_URL
    app.conf.task_default_queue = TEST_QUEUE
    settings.RAG_EMBEDDER = "hash"


@pytest.fixture
def staff_client(client, django_user_model):
    """A test client logged in as a superuser (staff)."""
    user = django_user_model.objects.create_superuser("admin", "admin@example.com", "pw-admin-1")
    client.force_login(user)
    return client


@pytest.fixture(scope="session")
def rag_bridge(django_db_setup, django_db_blocker):
    """The bridge's loop and engines in this process, closed before the test database goes."""
    from rag import bridge

    yield bridge
    bridge.shutdown()


@pytest.fixture(scope="session")
def celery_worker(
    django_db_setup, django_db_blocker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator:
    """One prefork worker (concurrency 2) on this run's queue, shared by the integration and
    browser tests of the session."""
    from devtools.workers import start_worker, stop_worker

    log_dir = tmp_path_factory.mktemp("worker-logs")
    with django_db_blocker.unblock():
        worker = start_worker(log_dir, broker_url=TEST_BROKER_URL, queue=TEST_QUEUE)
    yield worker
    stop_worker(worker)


@pytest.fixture
def wait_for_documents() -> Callable[..., list]:
    """Poll the database until the documents are ready or failed; fail with their states."""
    from documents.models import Document

    def wait(document_ids: Sequence[int], *, timeout: float = 120.0) -> list[Document]:
        deadline = time.monotonic() + timeout
        finished = {Document.Status.READY, Document.Status.FAILED}
        while True:
            documents = list(Document.objects.filter(pk__in=document_ids).order_by("pk"))
            if len(documents) == len(document_ids) and all(d.status in finished for d in documents):
                return documents
            if time.monotonic() > deadline:
                states = {d.pk: d.status for d in documents}
                raise AssertionError(f"Documents not finished after {timeout}s: {states}")
            time.sleep(0.25)

    return wait
