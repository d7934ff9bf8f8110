"""Embedders: the hash embedder is deterministic; the real local model is the one ingesting."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import math

import pytest
from sqlalchemy import text

from documents.ingestion import rag_config
from documents.models import Document
from rag.config import EmbedderConfig
from rag.embedder_factory import get_embedder
from rag.embedding import HashEmbedder, LocalEmbedder
from rag.service import service_for


def cosine(a, b) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_hash_embedder_is_deterministic_unit_length_and_lexical():
    embedder = HashEmbedder(EmbedderConfig(kind="hash", dimensions=384))
    a, b, c, again = asyncio.run(
        embedder.embed(
            [
                "the cat sat on the mat",
                "a cat sat on a mat",
                "tax law reform",
                "the cat sat on the mat",
            ]
        )
    )
    assert a == again
    assert math.isclose(math.sqrt(sum(v * v for v in a)), 1.0, rel_tol=1e-9)
    assert cosine(a, b) > cosine(a, c)


def test_unknown_embedder_names_are_refused():
    with pytest.raises(ValueError, match="Unknown embedder"):
        get_embedder(EmbedderConfig(kind="nope"))


@pytest.mark.django_db(transaction=True)
def test_real_local_model_embeds_what_is_ingested(rag_bridge, corpus):
    """all-MiniLM-L6-v2 from the installed package, offline, through the whole service."""
    config = dataclasses.replace(rag_config(), embedder=EmbedderConfig(kind="local", batch_size=8))
    embedder = get_embedder(config.embedder)
    assert isinstance(embedder, LocalEmbedder)
    assert embedder.dimensions == 384
    assert embedder.tokenizer.max_tokens == 254

    document = Document.objects.create(title="t", sha256="1" * 64, size_bytes=1, file="x/1.pdf")
    data = corpus["text-pdflatex-4pages.pdf"].path.read_bytes()

    async def ingest_and_read():
        service = service_for(config)
        result = await service.ingest_pdf(document_id=document.pk, stream=io.BytesIO(data))
        async with service.engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT text, embedding::text, embedder FROM documents_chunk "
                        "WHERE document_id = :d ORDER BY ordinal LIMIT 1"
                    ),
                    {"d": document.pk},
                )
            ).one()
        return result, row

    result, (chunk_text, stored, chunk_embedder) = rag_bridge.run(ingest_and_read())
    assert result.embedder == chunk_embedder == "sentence-transformers/all-MiniLM-L6-v2"
    # The lanes' thread CPU seconds, measured in the lanes: the model's work, reported apart.
    assert result.cpu_seconds["embed"] > 0
    stored_vector = [float(v) for v in stored.strip("[]").split(",")]

    # Encode independently with sentence-transformers: the stored vector is the model's.
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(embedder.model_path), device="cpu")
    reference = model.encode([chunk_text], normalize_embeddings=True)[0].tolist()
    assert cosine(stored_vector, reference) > 0.999

    related, unrelated = model.encode(
        ["a placeholder text that shows how printed letters look", "quarterly revenue of a bank"],
        normalize_embeddings=True,
    )
    assert cosine(stored_vector, related.tolist()) > cosine(stored_vector, unrelated.tolist())


@pytest.fixture(scope="module")
def reference_chunks(corpus) -> list[str]:
    from rag.chunking import chunk_pages
    from rag.parsing import PdfDocument

    reference = get_embedder(EmbedderConfig(kind="local", local_runtime="torch"))
    texts = []
    for name in ("paper-tracemonkey-pldi09-14pages.pdf", "cjk-chinese-report-22pages.pdf"):
        with corpus[name].path.open("rb") as fh:
            pages = PdfDocument(fh, max_pages=100).pages()
            texts += [
                c.text
                for c in chunk_pages(
                    pages, reference.tokenizer, chunk_tokens=200, overlap_tokens=32
                )
            ][:40]
    return texts


@pytest.mark.parametrize("runtime", ["onnx", "torch-bf16"])
def test_fast_runtimes_give_the_reference_vectors_over_corpus_chunks(
    runtime, reference_chunks, tmp_path
):
    """Every local runtime must agree with sentence-transformers on torch in float32."""
    import numpy as np

    fast = get_embedder(
        EmbedderConfig(kind="local", local_runtime=runtime, onnx_cache_dir=str(tmp_path))
    )
    torch = get_embedder(EmbedderConfig(kind="local", local_runtime="torch"))
    assert fast is not torch
    assert fast.name == torch.name  # same vector space: no re-embedding when switching
    vectors = np.array(asyncio.run(fast.embed(reference_chunks)))
    reference = np.array(asyncio.run(torch.embed(reference_chunks)))
    assert vectors.shape == reference.shape == (len(reference_chunks), 384)
    assert not np.array_equal(vectors, reference)  # really computed another way
    similarity = (vectors * reference).sum(axis=1)
    assert similarity.mean() >= 0.99
    assert similarity.min() >= 0.98
    if runtime == "onnx":
        assert (tmp_path / fast.onnx_path.name).exists()


def test_int8_runtime_stays_within_the_agreement_bound_over_corpus_chunks(
    reference_chunks, tmp_path
):
    """The opt-in int8 model (static quantisation, built here) keeps the bound under which an
    embedder may keep the reference's name: mean cosine >= 0.99, minimum >= 0.95."""
    import numpy as np
    import onnx

    from rag.embedding_int8 import float_matmuls_to_keep

    int8 = get_embedder(
        EmbedderConfig(kind="local", local_runtime="int8", onnx_cache_dir=str(tmp_path))
    )
    torch = get_embedder(EmbedderConfig(kind="local", local_runtime="torch"))
    assert int8.name == torch.name
    vectors = np.array(asyncio.run(int8.embed(reference_chunks)))
    reference = np.array(asyncio.run(torch.embed(reference_chunks)))
    similarity = (vectors * reference).sum(axis=1)
    assert similarity.mean() >= 0.99
    assert similarity.min() >= 0.95
    quantised = onnx.load(str(int8.onnx_path))
    operators = {node.op_type for node in quantised.graph.node}
    assert "MatMulInteger" in operators or "QLinearMatMul" in operators  # really int8
    # The six layers' attention products (2 each) and down-projections stay float32.
    assert len(float_matmuls_to_keep(onnx.load(str(int8.float_onnx_path)))) == 18


@pytest.mark.parametrize(("amx", "expected"), [(True, "torch-bf16"), (False, "onnx")])
def test_auto_runtime_follows_the_cpu(monkeypatch, amx, expected):
    from rag import embedding

    monkeypatch.setattr(embedding, "cpu_computes_bfloat16", lambda: amx)
    assert embedding.resolve_local_runtime("auto") == expected
    assert embedding.resolve_local_runtime("torch") == "torch"


@pytest.mark.parametrize(
    ("flags", "native"),
    [
        ("fpu sse2 avx2 avx512f amx_bf16 amx_tile", True),  # Intel Sapphire Rapids
        ("fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni", True),  # AMD Zen 4
        ("fpu sse2 avx2 avx512f avx512_vnni", False),  # AVX-512 without bfloat16
        ("fpu sse2 avx2", False),
    ],
)
def test_bfloat16_hardware_is_read_from_the_cpu_flags(flags, native):
    from rag.embedding import cpu_computes_bfloat16

    cpuinfo = f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n"
    assert cpu_computes_bfloat16(cpuinfo) is native
    assert cpu_computes_bfloat16("no flags line") is False


def test_an_unknown_runtime_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="auto, torch, torch-bf16, onnx, int8"):
        get_embedder(EmbedderConfig(kind="local", local_runtime="gpu"))


def test_the_local_model_is_built_once_per_process(tmp_path):
    config = EmbedderConfig(kind="local", local_runtime="onnx", onnx_cache_dir=str(tmp_path))
    embedder = get_embedder(config)
    assert get_embedder(config) is embedder
    asyncio.run(embedder.embed(["first call loads the model"]))
    session = embedder._session
    asyncio.run(embedder.embed(["second call reuses it"]))
    assert embedder._session is session is not None


def test_split_evenly_keeps_order_and_balance():
    from rag.embedding import split_evenly

    assert split_evenly(list(range(7)), 3) == [[0, 1, 2], [3, 4], [5, 6]]
    assert split_evenly(["one"], 4) == [["one"]]
    assert split_evenly([], 2) == [[]]


def test_lanes_return_vectors_in_input_order(reference_chunks):
    import numpy as np

    lanes = get_embedder(EmbedderConfig(kind="local", local_runtime="torch-bf16", torch_threads=3))
    assert lanes.lanes == 3
    texts = reference_chunks[:7]
    together = np.array(asyncio.run(lanes.embed(texts)))
    alone = np.array([asyncio.run(lanes.embed([text]))[0] for text in texts])
    assert ((together * alone).sum(axis=1) > 0.999).all()


def test_calls_in_flight_share_the_lanes_and_keep_their_own_order(reference_chunks):
    import numpy as np

    lanes = get_embedder(EmbedderConfig(kind="local", local_runtime="torch-bf16", torch_threads=2))
    texts = reference_chunks[:12]

    async def two_calls_at_once():
        return await asyncio.gather(lanes.embed(texts[:6]), lanes.embed(texts[6:]))

    first, second = asyncio.run(two_calls_at_once())
    alone = np.array(asyncio.run(lanes.embed(texts)))
    assert ((np.array(first + second) * alone).sum(axis=1) > 0.999).all()
    pool = lanes._lane_pool()
    assert pool._max_workers == lanes.lanes == 2
    assert lanes._lane_pool() is pool  # one pool per process, shared by every call


def test_the_pool_is_handed_out_while_a_lane_loads_the_model():
    import threading

    lanes = LocalEmbedder(EmbedderConfig(kind="local", local_runtime="torch-bf16"), lanes=True)
    got = []
    with lanes._lock:  # what a lane holds while it loads the model (seconds)
        asker = threading.Thread(target=lambda: got.append(lanes._lane_pool()))
        asker.start()
        asker.join(timeout=5)  # the event loop asks for the pool on every call
        assert got, "the event loop would wait for the model to load"


def test_a_forked_child_gets_lanes_of_its_own(reference_chunks):
    import multiprocessing

    lanes = get_embedder(EmbedderConfig(kind="local", local_runtime="torch-bf16", torch_threads=2))
    asyncio.run(lanes.embed(reference_chunks[:2]))  # the parent's pool threads exist now
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        # The parent's threads do not survive a fork: a child reusing its pool would hang.
        vectors = pool.apply_async(_embed_in_child, (reference_chunks[:2],)).get(timeout=120)
    assert len(vectors) == 2 and all(len(v) == 384 for v in vectors)


def _embed_in_child(texts: list[str]) -> list[list[float]]:
    lanes = get_embedder(EmbedderConfig(kind="local", local_runtime="torch-bf16", torch_threads=2))
    return asyncio.run(lanes.embed(texts))


def test_freed_batch_memory_can_be_handed_back_on_glibc():
    import platform

    from rag import memory

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("malloc_trim is glibc's; other allocators are left as they are")
    assert memory._malloc_trim is not None
    assert memory.release_free_memory(force=True)


def test_freed_memory_is_handed_back_at_most_once_per_interval_unless_forced(monkeypatch):
    from rag import memory

    calls = []
    monkeypatch.setattr(memory, "_malloc_trim", calls.append)
    monkeypatch.setattr(memory, "_released_at", float("-inf"))
    # Every batch would walk glibc's arenas and fault the pages back: once per interval.
    assert memory.release_free_memory()
    assert not memory.release_free_memory()
    assert memory.release_free_memory(force=True)  # the end of a document
    assert calls == [0, 0]
