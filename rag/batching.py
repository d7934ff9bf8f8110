"""Embedding batches of chunks of similar token length, formed within a bounded look-ahead.

A model pads every input of a batch to the longest one and computes the padding like text, so
a batch mixing a 60-token chunk with 200-token ones spends most of the short one's compute on
padding. The chunks of a few batches (:data:`LOOKAHEAD_BATCHES`) are gathered, sorted by token
count, and cut into batches: the look-ahead bounds what is held, whatever the document's length.
Ordinals are the chunker's, so the order in which batches are written does not matter.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rag.chunking import Chunk

# Batches' worth of chunks gathered and sorted together.
LOOKAHEAD_BATCHES = 4


@dataclass(frozen=True)
class Batch:
    """Chunks embedded in one call, and how far the document is done once it is written."""

    chunks: list[Chunk]
    pages_done: int | None
    """Pages fully embedded once this batch and those before it are written (the pages before
    the last page of the longest run of written chunks in order), or None when it adds none."""


class BatchFormer:
    """Takes chunks in order (:meth:`add`, then :meth:`finish`) and hands out batches."""

    def __init__(self, batch_size: int, *, lookahead_batches: int = LOOKAHEAD_BATCHES) -> None:
        self.batch_size = max(1, batch_size)
        self.window = self.batch_size * max(1, lookahead_batches)
        self._pending: list[Chunk] = []

    def add(self, chunks: Iterable[Chunk]) -> list[Batch]:
        """Take chunks in order; return the batches of every look-ahead window now full."""
        self._pending.extend(chunks)
        batches: list[Batch] = []
        while len(self._pending) >= self.window:
            batches += self._batches_of(self._pending[: self.window])
            del self._pending[: self.window]
        return batches

    def finish(self) -> list[Batch]:
        """The batches of the chunks still held."""
        batches = self._batches_of(self._pending)
        self._pending = []
        return batches

    def _batches_of(self, window: list[Chunk]) -> list[Batch]:
        """``window`` (in chunk order) cut into batches by token count, shortest first."""
        ranked = sorted(range(len(window)), key=lambda index: window[index].token_count)
        written = [False] * len(window)
        prefix = 0  # chunks of the window written in order, from its start
        batches = []
        for start in range(0, len(ranked), self.batch_size):
            indices = ranked[start : start + self.batch_size]
            for index in indices:
                written[index] = True
            before = prefix
            while prefix < len(window) and written[prefix]:
                prefix += 1
            pages_done = window[prefix - 1].page_end - 1 if prefix > before else None
            batches.append(Batch([window[index] for index in indices], pages_done))
        return batches
