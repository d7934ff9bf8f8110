"""Token-sized, page-tracked chunks from a stream of pages.

Chunks are measured in the embedder's own tokens and never exceed its input limit. A chunk ends
at a sentence boundary when one falls in its second half, else at a word boundary; consecutive
chunks share ``overlap`` tokens so a sentence cut at a boundary is still found whole in one of
them. Each chunk records the first and last page its text comes from.

The chunker is fed one page at a time and keeps only the pages its unfinished chunk still uses.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from rag.parsing import Page
from rag.tokens import Tokenizer

logger = logging.getLogger(__name__)

_SENTENCE_END = (".", "!", "?", "。", "！", "？")


@dataclass(frozen=True)
class Chunk:
    """A piece of a document's text, ready to embed."""

    ordinal: int
    page_start: int
    page_end: int
    text: str
    token_count: int


class _Unit(NamedTuple):
    page: int
    start: int
    end: int
    tokens: int
    sentence_end: bool
    piece: bool


class Chunker:
    """Turns pages into chunks; call :meth:`add_page` for each page, then :meth:`finish`."""

    def __init__(self, tokenizer: Tokenizer, *, chunk_tokens: int, overlap_tokens: int) -> None:
        self._tokenizer = tokenizer
        self.chunk_tokens = max(8, min(chunk_tokens, tokenizer.max_tokens))
        # An overlap of half a chunk or more would make the chunker crawl; cap it.
        self.overlap_tokens = max(0, min(overlap_tokens, self.chunk_tokens // 2))
        self._page_texts: dict[int, str] = {}
        self._units: list[_Unit] = []
        self._unit_tokens = 0
        self._ordinal = 0
        self._carried_tokens = 0

    def add_page(self, page: Page) -> Iterator[Chunk]:
        """Add one page's text; yield the chunks it completes."""
        if not page.text:
            return
        self._page_texts[page.number] = page.text
        # A single "word" (a long URL, a run of symbols) may exceed a chunk: cut it into pieces.
        max_word = max(1, self.chunk_tokens // 2)
        text, number = page.text, page.number
        for start, end, tokens, piece in self._tokenizer.words(text, max_word):
            unit = _Unit(number, start, end, tokens, text[end - 1 : end] in _SENTENCE_END, piece)
            while self._units and self._unit_tokens + unit.tokens > self.chunk_tokens:
                yield self._emit()
            self._units.append(unit)
            self._unit_tokens += unit.tokens

    def finish(self) -> Iterator[Chunk]:
        """Yield the last, partial chunk (unless it is only overlap already emitted)."""
        while self._units and self._unit_tokens > self._carried_tokens:
            yield self._emit(final=True)
        self._units, self._unit_tokens = [], 0

    def _emit(self, *, final: bool = False) -> Chunk:
        units = self._units
        cut = len(units) if final else self._cut_point(units)
        chunk, cut = self._make_chunk(units[:cut])
        chunk_units = units[:cut]
        carried = self._overlap(chunk_units)
        carried_tokens = sum(u.tokens for u in carried)
        rest = units[cut:]
        self._units = carried + rest
        self._unit_tokens = carried_tokens + sum(u.tokens for u in rest)
        self._carried_tokens = carried_tokens
        # Pages arrive in order: everything before the first page still in use can go (the
        # page being added has the highest number and is always kept).
        first_needed = self._units[0].page if self._units else max(self._page_texts)
        self._page_texts = {n: t for n, t in self._page_texts.items() if n >= first_needed}
        return chunk

    def _overlap(self, units: list[_Unit]) -> list[_Unit]:
        """The tail of a chunk repeated at the head of the next one.

        At most ``overlap_tokens`` long; it starts after a sentence end when one falls inside
        it, and never with punctuation, so the next chunk starts like a sentence would.
        """
        start, total = len(units), 0
        while start > 0 and total + units[start - 1].tokens <= self.overlap_tokens:
            start -= 1
            total += units[start].tokens
        if start == len(units):
            return []
        tail = units[start:]
        for index in range(len(tail) - 2, -1, -1):
            if tail[index].sentence_end:
                return tail[index + 1 :]
        while tail and not self._unit_text(tail[0])[:1].isalnum():
            tail = tail[1:]
        return tail

    def _unit_text(self, unit: _Unit) -> str:
        return self._page_texts[unit.page][unit.start : unit.end]

    def _cut_point(self, units: list[_Unit]) -> int:
        """Index after the last sentence end in the second half of ``units``, else all of them."""
        total = 0
        half = self._unit_tokens / 2
        best = len(units)
        for index, unit in enumerate(units):
            total += unit.tokens
            if unit.sentence_end and total >= half and index + 1 < len(units):
                best = index + 1
        # Never emit a chunk that is nothing but the overlap carried from the previous one.
        if sum(u.tokens for u in units[:best]) <= self._carried_tokens:
            best = len(units)
        return best

    def _make_chunk(self, units: list[_Unit]) -> tuple[Chunk, int]:
        """The chunk made of (a prefix of) ``units``, and how many units it used."""
        text = self._text_of(units)
        # Whole words cost the same joined as apart (the tokenizer splits text at the same
        # places), so their sum is the count; only a word cut into pieces needs counting anew.
        if not any(unit.piece for unit in units):
            return self._new_chunk(units, text, sum(unit.tokens for unit in units)), len(units)
        token_count = self._tokenizer.count(text)
        # Word-by-word counts can differ from counting the joined text by a token where a long
        # word was cut into pieces; drop words from the end until the real count fits.
        while token_count > self._tokenizer.max_tokens and len(units) > 1:
            units = units[:-1]
            text = self._text_of(units)
            token_count = self._tokenizer.count(text)
        return self._new_chunk(units, text, token_count), len(units)

    def _new_chunk(self, units: list[_Unit], text: str, token_count: int) -> Chunk:
        chunk = Chunk(
            ordinal=self._ordinal,
            page_start=units[0].page,
            page_end=units[-1].page,
            text=text,
            token_count=token_count,
        )
        self._ordinal += 1
        return chunk

    def _text_of(self, units: list[_Unit]) -> str:
        parts: list[str] = []
        run_start = 0
        for index in range(1, len(units) + 1):
            if index == len(units) or units[index].page != units[run_start].page:
                first, last = units[run_start], units[index - 1]
                parts.append(self._page_texts[first.page][first.start : last.end])
                run_start = index
        return "\n".join(parts)


def chunk_pages(
    pages: Iterable[Page], tokenizer: Tokenizer, *, chunk_tokens: int, overlap_tokens: int
) -> Iterator[Chunk]:
    """Chunk a whole stream of pages (convenience for callers that need no interleaving)."""
    chunker = Chunker(tokenizer, chunk_tokens=chunk_tokens, overlap_tokens=overlap_tokens)
    for page in pages:
        yield from chunker.add_page(page)
    yield from chunker.finish()
