"""API fixtures: keys made by the real command, the rate counter in the test Redis database,
documents indexed through the real service (hash embedder)."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Coroutine
from io import StringIO
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.core.management import call_command
from django.test import AsyncClient

from devtools import pdf_factory
from documents import ingestion
from documents.ingestion import rag_config
from documents.models import Document
from rag.service import service_for
from tests.conftest import TEST_BROKER_URL


@pytest.fixture(autouse=True)
def _rate_counter_in_test_redis(settings):
    settings.CACHES = {
        **settings.CACHES,
        "api_rate": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": TEST_BROKER_URL,
            "KEY_PREFIX": f"fca-test-rate-{uuid.uuid4().hex[:8]}",
        },
    }


@pytest.fixture
def make_key() -> Callable[..., str]:
    def make(name: str = "app", collections: str = "") -> str:
        out = StringIO()
        call_command("create_api_key", name, "--collections", collections, stdout=out)
        return out.getvalue().strip().splitlines()[-1]

    return make


def run_async(scenario: Callable[[AsyncClient], Coroutine[Any, Any, None]]) -> None:
    """Run an async scenario with Django's async test client on one event loop, and dispose of
    the engine the API made on that loop before the loop goes."""

    async def main() -> None:
        try:
            await scenario(AsyncClient())
        finally:
            await ingestion.close_running_loop_engines()

    async_to_sync(main)()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def index_text(rag_bridge) -> Callable[..., int]:
    """A document holding ``text``, ingested by the real service (no worker needed)."""
    count = iter(range(10**6))

    def index(text: str, *, collection: str = "default", title: str = "") -> int:
        n = next(count)
        document = Document.objects.create(
            title=title or f"doc {n}",
            collection=collection,
            sha256=uuid.uuid4().hex * 2,
            size_bytes=1,
            file=f"x/{n}.pdf",
            status=Document.Status.READY,
        )

        async def ingest() -> None:
            stream = io.BytesIO(pdf_factory.text_pdf(text))
            await service_for(rag_config()).ingest_pdf(document_id=document.pk, stream=stream)

        rag_bridge.run(ingest())
        return document.pk

    return index
