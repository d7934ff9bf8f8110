"""Batches of similar token length within a bounded look-ahead: same chunks, same ordinals."""

from __future__ import annotations

import random

from rag.batching import BatchFormer
from rag.chunking import Chunk


def chunks_of(token_counts: list[int], per_page: int = 3) -> list[Chunk]:
    return [
        Chunk(
            ordinal=ordinal,
            page_start=1 + ordinal // per_page,
            page_end=1 + (ordinal + 1) // per_page,
            text=f"chunk {ordinal}",
            token_count=tokens,
        )
        for ordinal, tokens in enumerate(token_counts)
    ]


def form(chunks: list[Chunk], batch_size: int, feed: int = 5):
    """Feed the former a few chunks at a time, as pages do; every batch, and the most held."""
    former = BatchFormer(batch_size)
    batches, most_held = [], 0
    for start in range(0, len(chunks), feed):
        batches += former.add(chunks[start : start + feed])
        most_held = max(most_held, len(former._pending))
    return batches + former.finish(), most_held


def test_every_chunk_is_handed_out_once_with_its_ordinal_and_little_is_held():
    rng = random.Random(7)
    chunks = chunks_of([rng.randint(20, 200) for _ in range(203)])
    batches, most_held = form(chunks, batch_size=16)

    handed = [chunk for batch in batches for chunk in batch.chunks]
    assert sorted(handed, key=lambda c: c.ordinal) == chunks  # same chunks, ordinals untouched
    assert len(handed) == len({c.ordinal for c in handed})
    assert all(1 <= len(batch.chunks) <= 16 for batch in batches)
    assert most_held < 4 * 16  # never more than the look-ahead, whatever the document's length


def test_batches_of_a_window_go_from_short_to_long_chunks_and_pad_less():
    rng = random.Random(11)
    chunks = chunks_of([rng.choice([40, 120, 200]) for _ in range(64)])
    batches, _ = form(chunks, batch_size=16)

    assert len(batches) == 4
    for before, after in zip(batches, batches[1:], strict=False):
        assert max(c.token_count for c in before.chunks) <= min(c.token_count for c in after.chunks)

    def padded(groups: list[list[Chunk]]) -> int:
        return sum(max(c.token_count for c in group) * len(group) for group in groups)

    in_order = [chunks[start : start + 16] for start in range(0, 64, 16)]
    assert padded([batch.chunks for batch in batches]) < 0.8 * padded(in_order)


def test_pages_done_only_counts_pages_whose_chunks_are_all_handed_out():
    rng = random.Random(3)
    chunks = chunks_of([rng.randint(20, 200) for _ in range(150)], per_page=4)
    batches, _ = form(chunks, batch_size=8)

    handed: set[int] = set()
    reported = []
    for batch in batches:
        handed |= {c.ordinal for c in batch.chunks}
        if batch.pages_done is not None:
            reported.append(batch.pages_done)
            assert all(c.ordinal in handed for c in chunks if c.page_end <= batch.pages_done)
    assert reported == sorted(reported)
    assert reported[-1] == chunks[-1].page_end - 1
