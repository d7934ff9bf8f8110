"""RAGService against the real database: atomic, idempotent replacement and typed failures."""

from __future__ import annotations

import asyncio
import dataclasses
import io

import pytest
from sqlalchemy import text

from devtools.database import backend_pid
from documents.ingestion import rag_config
from documents.models import Chunk, Document
from rag import store
from rag.chunking import chunk_pages
from rag.config import EmbedderConfig
from rag.embedder_factory import get_embedder
from rag.errors import (
    CorruptPdfError,
    DocumentMissingError,
    EmbedderMismatchError,
    TransientIngestError,
)
from rag.parsing import PdfDocument
from rag.service import service_for

pytestmark = pytest.mark.django_db(transaction=True)


def make_document(name: str = "doc", sha: str = "0" * 64) -> Document:
    return Document.objects.create(title=name, sha256=sha, size_bytes=1, file=f"x/{sha}.pdf")


def ingest(bridge, document_id: int, data: bytes, config=None):
    config = config or rag_config()

    async def run():
        return await service_for(config).ingest_pdf(
            document_id=document_id, stream=io.BytesIO(data)
        )

    return bridge.run(run())


def chunk_state(document: Document) -> list[tuple[int, int, int, str]]:
    return list(
        Chunk.objects.filter(document=document)
        .order_by("ordinal")
        .values_list("pk", "ordinal", "page_start", "text")
    )


def test_ingest_writes_chunks_and_counts(rag_bridge, corpus):
    document = make_document()
    result = ingest(rag_bridge, document.pk, corpus["text-pdflatex-4pages.pdf"].path.read_bytes())

    document.refresh_from_db()
    chunks = chunk_state(document)
    assert result.pages == document.page_count == 4
    assert result.chunks == document.chunk_count == len(chunks) > 0
    assert [c[1] for c in chunks] == list(range(len(chunks)))
    assert document.embedder == result.embedder == "hash-384"
    assert set(result.seconds) >= {"parse", "chunk", "embed", "write", "total"}


def test_reingest_replaces_chunks_without_duplicates(rag_bridge, corpus):
    document = make_document()
    data = corpus["text-latex-two-column-3pages.pdf"].path.read_bytes()
    ingest(rag_bridge, document.pk, data)
    before = chunk_state(document)
    ingest(rag_bridge, document.pk, data)
    after = chunk_state(document)

    assert [c[1:] for c in after] == [c[1:] for c in before]
    assert not {c[0] for c in before} & {c[0] for c in after}


def test_failed_reingest_keeps_the_previous_chunks_and_counts(rag_bridge, corpus):
    document = make_document()
    ingest(rag_bridge, document.pk, corpus["text-pdflatex-4pages.pdf"].path.read_bytes())
    document.refresh_from_db()
    before = (chunk_state(document), document.chunk_count, document.embedder)

    # Its one page fails in pypdf, and neither PDFium nor OCR finds text on it.
    broken = corpus["broken-a85-filter-deprecationerror.pdf"].path.read_bytes()
    with pytest.raises(CorruptPdfError):
        ingest(rag_bridge, document.pk, broken)

    document.refresh_from_db()
    assert (chunk_state(document), document.chunk_count, document.embedder) == before
    # The page count describes the file as last opened (published with the progress).
    assert document.page_count == 1


def test_a_deleted_document_gets_no_chunks(rag_bridge, corpus):
    document = make_document()
    document_id = document.pk
    document.delete()
    with pytest.raises(DocumentMissingError):
        ingest(rag_bridge, document_id, corpus["text-pdflatex-4pages.pdf"].path.read_bytes())
    assert not Chunk.objects.filter(document_id=document_id).exists()


def test_an_embedder_of_another_dimension_is_refused_before_any_work(rag_bridge, corpus):
    document = make_document()
    config = dataclasses.replace(rag_config(), embedder=EmbedderConfig(kind="hash", dimensions=64))
    with pytest.raises(EmbedderMismatchError, match="64-dimensional"):
        ingest(
            rag_bridge, document.pk, corpus["text-pdflatex-4pages.pdf"].path.read_bytes(), config
        )


def test_an_unreachable_database_is_a_transient_error(rag_bridge, corpus):
    config = dataclasses.replace(
        rag_config(), database_url="postgresql+psycopg://postgres@127.0.0.1:9/nowhere"
    )
    with pytest.raises(TransientIngestError, match="Database unavailable"):
        ingest(rag_bridge, 1, corpus["text-pdflatex-4pages.pdf"].path.read_bytes(), config)


def test_the_engine_and_its_connection_are_reused_across_calls(rag_bridge):
    config = rag_config()

    async def backend():
        engine = service_for(config).engine
        async with engine.connect() as conn:
            return id(engine), await backend_pid(conn)

    first = rag_bridge.run(backend())
    assert all(rag_bridge.run(backend()) == first for _ in range(5))


def test_vectors_are_written_as_unit_vectors(rag_bridge, corpus):
    document = make_document()
    ingest(rag_bridge, document.pk, corpus["text-pdflatex-4pages.pdf"].path.read_bytes())

    async def norms():
        async with service_for(rag_config()).engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT vector_norm(embedding) FROM documents_chunk WHERE document_id = :d"),
                {"d": document.pk},
            )
            return [row[0] for row in rows]

    assert all(abs(n - 1.0) < 1e-5 for n in rag_bridge.run(norms()))


class FailingAfter:
    """Wraps an embedder and fails on its n-th call (after earlier batches were written)."""

    def __init__(self, inner, calls: int) -> None:
        self.inner, self.calls = inner, calls
        self.name, self.dimensions, self.tokenizer = inner.name, inner.dimensions, inner.tokenizer

    async def embed(self, texts):
        self.calls -= 1
        if self.calls == 0:
            raise TransientIngestError("embedding service went away")
        return await self.inner.embed(texts)


def test_a_failure_after_batches_were_written_rolls_back_to_the_previous_chunks(rag_bridge, corpus):
    from rag.embedder_factory import get_embedder
    from rag.service import RAGService, engine_for

    document = make_document()
    data = corpus["text-openoffice-55pages.pdf"].path.read_bytes()
    ingest(rag_bridge, document.pk, data)
    document.refresh_from_db()
    before = (chunk_state(document), document.chunk_count)
    config = rag_config()

    async def failing_ingest():
        service = RAGService(
            config,
            engine=engine_for(config),
            embedder=FailingAfter(get_embedder(config.embedder), calls=4),
        )
        await service.ingest_pdf(document_id=document.pk, stream=io.BytesIO(data))

    with pytest.raises(TransientIngestError, match="went away"):
        rag_bridge.run(failing_ingest())
    document.refresh_from_db()
    assert (chunk_state(document), document.chunk_count) == before


class Recording:
    """Wraps an embedder; records the texts of each call in the order the calls were made, and
    holds the first call until a second one has started (or fails it after a while)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name, self.dimensions, self.tokenizer = inner.name, inner.dimensions, inner.tokenizer
        self.running = self.most_running = 0
        self.submitted: list[str] = []
        self._second_started = asyncio.Event()

    async def embed(self, texts):
        first = not self.submitted
        self.submitted += texts
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        if self.running > 1:
            self._second_started.set()
        try:
            if first:  # the pipeline must start the next call without waiting for this one
                await asyncio.wait_for(self._second_started.wait(), timeout=30)
            return await self.inner.embed(texts)
        finally:
            self.running -= 1


def test_the_embedder_is_kept_fed_with_calls_in_flight_and_every_chunk_lands_once(
    rag_bridge, corpus
):
    from rag.embedder_factory import get_embedder
    from rag.pipeline import EMBED_CALLS_IN_FLIGHT
    from rag.service import RAGService, engine_for

    config = rag_config()
    config = dataclasses.replace(
        config, embedder=dataclasses.replace(config.embedder, batch_size=4)
    )
    recording = Recording(get_embedder(config.embedder))
    document = make_document()
    data = corpus["text-openoffice-55pages.pdf"].path.read_bytes()

    async def run():
        service = RAGService(config, engine=engine_for(config), embedder=recording)
        return await service.ingest_pdf(document_id=document.pk, stream=io.BytesIO(data))

    result = rag_bridge.run(run())

    assert recording.most_running == EMBED_CALLS_IN_FLIGHT == 2
    stored = chunk_state(document)
    assert [ordinal for _, ordinal, _, _ in stored] == list(range(result.chunks))
    # Batches go by token length (rag.batching): the same chunks, with the chunker's ordinals.
    assert sorted(text for _, _, _, text in stored) == sorted(recording.submitted)
    assert len(recording.submitted) == result.chunks
    total = result.seconds["total"]
    assert 0 < result.seconds["embed"] < total and 0 <= result.seconds["wait"] < total


def test_stage_timings_include_waiting(rag_bridge, corpus):
    document = make_document()
    result = ingest(
        rag_bridge, document.pk, corpus["text-openoffice-55pages.pdf"].path.read_bytes()
    )
    assert {"parse", "chunk", "embed", "write", "wait", "total"} <= set(result.seconds)


def test_stage_cpu_seconds_are_reported_from_the_reader_child_and_the_loop(rag_bridge, corpus):
    document = make_document()
    result = ingest(
        rag_bridge, document.pk, corpus["text-openoffice-55pages.pdf"].path.read_bytes()
    )
    cpu = result.cpu_seconds
    assert {"parse", "chunk", "loop"} <= set(cpu)
    assert all(value > 0 for value in cpu.values())
    # The child parses single-threaded: its CPU seconds cannot exceed the parse stage's time
    # (which also counts starting the child), nor the loop's the whole ingestion's.
    assert cpu["parse"] <= result.seconds["parse"]
    assert cpu["chunk"] + cpu["loop"] <= result.seconds["total"]
    assert "embed" not in cpu  # the hash embedder computes on the loop: counted there
    assert "ocr" not in cpu  # a text PDF: no page OCR'd


def test_progress_is_published_outside_the_transaction_as_pages_are_embedded(
    rag_bridge, corpus, monkeypatch
):
    import rag.pipeline

    monkeypatch.setattr(rag.pipeline, "PROGRESS_EVERY_SECONDS", 0.0)
    seen: list[tuple[int, int | None, int]] = []
    publish = store.record_progress

    async def observed(engine, *, document_id, pages_done, page_count):
        await publish(engine, document_id=document_id, pages_done=pages_done, page_count=page_count)
        # Read back on another connection: only committed values are visible there.
        async with engine.connect() as conn:
            row = await conn.execute(
                text("SELECT pages_done, page_count FROM documents_document WHERE id = :id"),
                {"id": document_id},
            )
            seen.append((pages_done, *row.one()))

    monkeypatch.setattr(store, "record_progress", observed)
    document = make_document()
    document.pages_done = 99
    document.save()
    config = rag_config()
    config = dataclasses.replace(
        config, embedder=dataclasses.replace(config.embedder, batch_size=1)
    )
    ingest(rag_bridge, document.pk, corpus["text-pdflatex-4pages.pdf"].path.read_bytes(), config)

    assert seen[0] == (0, 0, 4)  # published as soon as the PDF is opened
    assert [published for published, _, _ in seen] == [done for done, _, _ in seen]
    assert [done for done, _, _ in seen] == sorted(done for done, _, _ in seen)
    assert {done for done, _, _ in seen} >= {0, 1, 2, 3}
    assert all(total == 4 for _, _, total in seen)
    document.refresh_from_db()
    assert (document.pages_done, document.page_count) == (4, 4)


def test_a_pool_too_small_for_progress_is_refused():
    with pytest.raises(ValueError, match="at least 2 connections"):
        dataclasses.replace(rag_config(), pool_size=1)


def test_every_document_is_read_in_a_child_process_with_the_same_chunks(
    rag_bridge, corpus, monkeypatch
):
    # Even a 4-page document: a page read in a thread could not be stopped by the budget.
    spawned = []
    create = asyncio.create_subprocess_exec

    async def recorded(*args, **kwargs):
        spawned.append(args)
        return await create(*args, **kwargs)

    monkeypatch.setattr(asyncio, "create_subprocess_exec", recorded)
    path = corpus["text-pdflatex-4pages.pdf"].path
    document = make_document()
    result = ingest(rag_bridge, document.pk, path.read_bytes())

    assert len(spawned) == 1 and "rag.page_reader_child" in spawned[0]
    config = rag_config()
    with path.open("rb") as fh:
        expected = [
            (c.ordinal, c.page_start, c.text)
            for c in chunk_pages(
                PdfDocument(fh, max_pages=config.max_pages).pages(),
                get_embedder(config.embedder).tokenizer,
                chunk_tokens=config.chunk_tokens,
                overlap_tokens=config.chunk_overlap_tokens,
                max_chars=config.chunk_max_chars,
            )
        ]
    assert [c[1:] for c in chunk_state(document)] == expected
    assert result.pages == 4 and result.seconds["parse"] > 0


def test_copied_vectors_read_back_as_the_embedder_made_them(rag_bridge, corpus):
    import numpy as np

    from rag.embedder_factory import get_embedder

    document = make_document()
    ingest(rag_bridge, document.pk, corpus["text-pdflatex-4pages.pdf"].path.read_bytes())
    embedder = get_embedder(rag_config().embedder)

    async def stored():
        async with service_for(rag_config()).engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT text, embedding::text, vector_dims(embedding) FROM documents_chunk "
                    "WHERE document_id = :d ORDER BY ordinal"
                ),
                {"d": document.pk},
            )
            return rows.all()

    rows = rag_bridge.run(stored())
    assert rows and all(dims == embedder.dimensions for _, _, dims in rows)
    expected = np.array(asyncio.run(embedder.embed([row[0] for row in rows])), dtype=np.float32)
    written = np.array([[float(x) for x in vector.strip("[]").split(",")] for _, vector, _ in rows])
    assert np.allclose(written, expected, atol=1e-6)
