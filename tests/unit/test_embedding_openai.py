"""The OpenAI-compatible embedder against a local HTTP server started by the test."""

from __future__ import annotations

import dataclasses
import io
import time

import pytest

from devtools import pdf_factory
from documents.ingestion import rag_config
from documents.models import Chunk, Document
from rag import bridge
from rag.config import EmbedderConfig
from rag.embedding import HashEmbedder
from rag.embedding_openai import EmbedderRequestError, OpenAIEmbedder
from rag.errors import TransientIngestError
from rag.service import service_for
from tests.openai_server import EmbeddingsServer


def embedder(server: EmbeddingsServer, **options) -> OpenAIEmbedder:
    config = EmbedderConfig(
        kind="openai",
        openai_base_url=server.base_url,
        openai_model="test-embedding",
        openai_api_key="sk-test",
        batch_size=options.pop("batch_size", 3),
        openai_max_retries=options.pop("max_retries", 3),
        **options,
    )
    return OpenAIEmbedder(config)


def embed(client: OpenAIEmbedder, texts):
    return bridge.run(client.embed(texts))


def test_texts_are_sent_in_batches_and_vectors_come_back_in_order():
    texts = [f"text number {i}" for i in range(7)]
    with EmbeddingsServer() as server:
        vectors = embed(embedder(server), texts)
    # Batches go out concurrently, so they may arrive in any order.
    assert sorted(len(r["input"]) for r in server.requests) == [1, 3, 3]
    assert all(r["model"] == "test-embedding" for r in server.requests)
    reference = HashEmbedder(EmbedderConfig(kind="hash"))
    assert vectors == [pytest.approx(reference.embed_one(t)) for t in texts]


def test_requests_in_flight_are_bounded():
    with EmbeddingsServer(delay=0.2) as server:
        embed(embedder(server, batch_size=1, openai_concurrency=2), [f"t{i}" for i in range(8)])
    assert len(server.requests) == 8
    assert server.peak_in_flight == 2


def test_429_is_retried_after_the_time_retry_after_asks_for():
    with EmbeddingsServer() as server:
        server.failures.append((429, {"Retry-After": "1"}))
        vectors = embed(embedder(server), ["one", "two"])
    assert len(vectors) == 2
    assert len(server.requests) == 2
    assert server.times[1] - server.times[0] >= 0.95


def test_server_errors_are_retried_then_succeed():
    with EmbeddingsServer() as server:
        server.failures.extend([(500, {}), (503, {})])
        assert len(embed(embedder(server), ["one"])) == 1
    assert len(server.requests) == 3


def test_a_server_that_keeps_failing_is_a_transient_error():
    with EmbeddingsServer() as server:
        server.failures.extend([(500, {})] * 10)
        with pytest.raises(TransientIngestError, match="kept failing"):
            embed(embedder(server, max_retries=2), ["one"])
    assert len(server.requests) == 3


def test_a_4xx_is_a_permanent_error_that_says_why():
    with EmbeddingsServer() as server:
        server.failures.append((401, {}))
        with pytest.raises(EmbedderRequestError, match="HTTP 401"):
            embed(embedder(server), ["one"])
    assert len(server.requests) == 1


def test_the_http_client_belongs_to_the_loop_and_is_closed_with_it():
    with EmbeddingsServer() as server:
        client = embedder(server)
        holder = {}

        def work():
            embed(client, ["a"])
            holder["http"] = bridge.run(_current_client(client))
            bridge.close_current()

        import threading

        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
    assert holder["http"].is_closed


async def _current_client(client: OpenAIEmbedder):
    return client._client()


@pytest.mark.django_db(transaction=True)
def test_documents_are_ingested_with_the_remote_embedder(rag_bridge):
    with EmbeddingsServer() as server:
        config = dataclasses.replace(
            rag_config(),
            embedder=EmbedderConfig(
                kind="openai", openai_base_url=server.base_url, openai_model="test-embedding"
            ),
        )
        document = Document.objects.create(title="t", sha256="9" * 64, size_bytes=1, file="x/9")
        data = pdf_factory.text_pdf("Remote embeddings for a local index. " * 20)

        async def ingest():
            return await service_for(config).ingest_pdf(
                document_id=document.pk, stream=io.BytesIO(data)
            )

        started = time.monotonic()
        result = rag_bridge.run(ingest())
    assert time.monotonic() - started < 30
    assert result.embedder == "openai/test-embedding"
    assert Chunk.objects.filter(document=document, embedder="openai/test-embedding").count() == (
        result.chunks
    )
    assert server.requests
