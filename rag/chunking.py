"""Token-sized, page-tracked chunks from a stream of pages.

Chunks are measured in the embedder's own tokens and never exceed its input limit. A chunk ends
at a sentence boundary when one falls in its second half, else at a word boundary; consecutive
chunks share ``overlap`` tokens so a sentence cut at a boundary is still found whole in one of
them. Each chunk records the first and last page its text comes from.

Chunks are capped in characters too: a run of characters without spaces is one word to the
tokenizer (WordPiece maps any word over 100 characters to a single ``[UNK]``), so a page showing
a 10 MB "word" would otherwise make a 10 MB chunk of one token. Such runs are cut into pieces of
at most :data:`MAX_WORD_CHARS` before the tokenizer sees them, and page text is tokenized in
windows of :data:`TOKENIZE_WINDOW_CHARS`, so memory stays flat whatever a page holds.

The chunker is fed one page at a time and keeps only the pages its unfinished chunk still uses.
"""

from __future__ import annotations

import logging
import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from rag.config import DEFAULT_CHUNK_MAX_CHARS
from rag.parsing import SOURCE_OCR, Page
from rag.tokens import Tokenizer

logger = logging.getLogger(__name__)

_SENTENCE_END = (".", "!", "?", "。", "！", "？")
# Longest run of non-space characters handed to the tokenizer whole (also at most a quarter of
# the chunk's character cap); longer runs are cut into pieces of this length.
MAX_WORD_CHARS = 200
# Page text is tokenized in windows of about this size, cut at spaces: a tokenizer call makes a
# few Python objects per token, which for a page of megabytes would be gigabytes.
TOKENIZE_WINDOW_CHARS = 16_384
# The smallest character cap accepted (a chunk must hold a few words).
MIN_CHUNK_CHARS = 64


@dataclass(frozen=True)
class Chunk:
    """A piece of a document's text, ready to embed."""

    ordinal: int
    page_start: int
    page_end: int
    text: str
    token_count: int
    ocr: bool = False
    """Whether any of its text was read by OCR."""
    ocr_confidence: float | None = None
    """Mean OCR confidence (0-100) of its OCR'd words, each word counting its page's mean."""


class _Unit(NamedTuple):
    page: int
    start: int
    end: int
    tokens: int
    sentence_end: bool
    piece: bool


def _added_chars(previous: _Unit | None, unit: _Unit) -> int:
    """How much longer a chunk's text gets when ``unit`` follows ``previous`` (see _text_of)."""
    if previous is None:
        return unit.end - unit.start
    if previous.page == unit.page:
        return unit.end - previous.end
    return 1 + unit.end - unit.start  # a new page's run, after a newline


def _span_chars(units: list[_Unit]) -> int:
    """Length of the text of ``units`` (what :meth:`Chunker._text_of` would return)."""
    total, previous = 0, None
    for unit in units:
        total += _added_chars(previous, unit)
        previous = unit
    return total


class Chunker:
    """Turns pages into chunks; call :meth:`add_page` for each page, then :meth:`finish`."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        *,
        chunk_tokens: int,
        overlap_tokens: int,
        max_chars: int = DEFAULT_CHUNK_MAX_CHARS,
    ) -> None:
        self._tokenizer = tokenizer
        self.chunk_tokens = max(8, min(chunk_tokens, tokenizer.max_tokens))
        # An overlap of half a chunk or more would make the chunker crawl; cap it.
        self.overlap_tokens = max(0, min(overlap_tokens, self.chunk_tokens // 2))
        self.max_chars = max(MIN_CHUNK_CHARS, max_chars)
        self.max_word_chars = min(MAX_WORD_CHARS, self.max_chars // 4)
        self._long_run = re.compile(rf"\S{{{self.max_word_chars + 1},}}")
        self._page_texts: dict[int, str] = {}
        # OCR confidence of the OCR'd pages still in use (pages of other sources are absent).
        self._ocr_pages: dict[int, float | None] = {}
        self._units: list[_Unit] = []
        self._unit_tokens = 0
        self._unit_chars = 0
        self._ordinal = 0
        self._carried_tokens = 0
        self._carried_units = 0

    def add_page(self, page: Page) -> Iterator[Chunk]:
        """Add one page's text; yield the chunks it completes."""
        if not page.text:
            return
        self._page_texts[page.number] = page.text
        if page.source == SOURCE_OCR:
            self._ocr_pages[page.number] = page.ocr_confidence
        for unit in self._units_of(page):
            while self._units and (
                self._unit_tokens + unit.tokens > self.chunk_tokens
                or self._unit_chars + _added_chars(self._units[-1], unit) > self.max_chars
            ):
                if len(self._units) == self._carried_units:
                    # Only the overlap is left and the next word does not fit beside it (the
                    # character cap, with long words): start afresh rather than repeat it.
                    self._units, self._unit_tokens, self._unit_chars = [], 0, 0
                    self._carried_tokens = self._carried_units = 0
                    break
                yield self._emit()
            self._unit_chars += _added_chars(self._units[-1] if self._units else None, unit)
            self._units.append(unit)
            self._unit_tokens += unit.tokens

    def finish(self) -> Iterator[Chunk]:
        """Yield the last, partial chunk (unless it is only overlap already emitted)."""
        while self._units and self._unit_tokens > self._carried_tokens:
            yield self._emit(final=True)
        self._units, self._unit_tokens, self._unit_chars = [], 0, 0

    def _units_of(self, page: Page) -> Iterator[_Unit]:
        """The page's words as units, tokenized window by window.

        A single word (a long URL, a run of symbols) may exceed a chunk: the tokenizer cuts it
        into pieces of half a chunk's tokens, and runs longer than ``max_word_chars`` are cut
        into pieces of that many characters before it sees them.
        """
        max_word = max(1, self.chunk_tokens // 2)
        text, number = page.text, page.number
        for spans, whole in self._windows(text):
            if len(spans) == 1:
                offset = spans[0][0]
                for start, end, tokens, piece in self._tokenizer.words(
                    text[offset : spans[0][1]], max_word
                ):
                    start, end = start + offset, end + offset
                    ending = text[end - 1 : end] in _SENTENCE_END
                    yield _Unit(number, start, end, tokens, ending, piece or not whole)
                continue
            # Pieces of one long run, tokenized together joined by spaces (a word never spans
            # a space): map each word back to its piece.
            joined_starts, position = [], 0
            for first, last in spans:
                joined_starts.append(position)
                position += last - first + 1
            joined = " ".join(text[first:last] for first, last in spans)
            for start, end, tokens, _ in self._tokenizer.words(joined, max_word):
                index = bisect_right(joined_starts, start) - 1
                shift = spans[index][0] - joined_starts[index]
                yield _Unit(number, start + shift, end + shift, tokens, False, True)

    def _windows(self, text: str) -> Iterator[tuple[list[tuple[int, int]], bool]]:
        """``(spans, whole)`` covering ``text`` in order: one span of whole words (cut at a
        space, about :data:`TOKENIZE_WINDOW_CHARS` long), or pieces of one overlong run."""
        position = 0
        for run in self._long_run.finditer(text):
            yield from self._word_windows(text, position, run.start())
            step = self.max_word_chars
            pieces = [(i, min(i + step, run.end())) for i in range(run.start(), run.end(), step)]
            per_window = max(1, TOKENIZE_WINDOW_CHARS // (step + 1))
            for first in range(0, len(pieces), per_window):
                yield pieces[first : first + per_window], False
            position = run.end()
        yield from self._word_windows(text, position, len(text))

    @staticmethod
    def _word_windows(
        text: str, start: int, stop: int
    ) -> Iterator[tuple[list[tuple[int, int]], bool]]:
        """Windows of whole words between ``start`` and ``stop`` (no overlong run inside)."""
        while start < stop:
            end = min(start + TOKENIZE_WINDOW_CHARS, stop)
            if end < stop:
                # Back up to a space: one is never far, as runs between them are short here.
                cut = end
                while cut > start and not text[cut - 1].isspace():
                    cut -= 1
                end = cut if cut > start else end
            yield [(start, end)], True
            start = end

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
        self._unit_chars = _span_chars(self._units)
        self._carried_tokens = carried_tokens
        self._carried_units = len(carried)
        # Pages arrive in order: everything before the first page still in use can go (the
        # page being added has the highest number and is always kept).
        first_needed = self._units[0].page if self._units else max(self._page_texts)
        self._page_texts = {n: t for n, t in self._page_texts.items() if n >= first_needed}
        self._ocr_pages = {n: c for n, c in self._ocr_pages.items() if n >= first_needed}
        return chunk

    def _overlap(self, units: list[_Unit]) -> list[_Unit]:
        """The tail of a chunk repeated at the head of the next one.

        At most ``overlap_tokens`` long and an eighth of the character cap; it starts after a
        sentence end when one falls inside it, and never with punctuation, so the next chunk
        starts like a sentence would.
        """
        start, total = len(units), 0
        chars = 0
        while start > 0 and total + units[start - 1].tokens <= self.overlap_tokens:
            before = units[start - 1]
            if start == len(units):
                added = before.end - before.start
            elif before.page == units[start].page:
                added = units[start].start - before.start
            else:
                added = 1 + before.end - before.start
            if chars + added > self.max_chars // 8:
                break
            start -= 1
            total += units[start].tokens
            chars += added
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
        ocr_words = [self._ocr_pages[unit.page] for unit in units if unit.page in self._ocr_pages]
        known = [value for value in ocr_words if value is not None]
        chunk = Chunk(
            ordinal=self._ordinal,
            page_start=units[0].page,
            page_end=units[-1].page,
            text=text,
            token_count=token_count,
            ocr=bool(ocr_words),
            ocr_confidence=round(sum(known) / len(known), 2) if known else None,
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
    pages: Iterable[Page],
    tokenizer: Tokenizer,
    *,
    chunk_tokens: int,
    overlap_tokens: int,
    max_chars: int = DEFAULT_CHUNK_MAX_CHARS,
) -> Iterator[Chunk]:
    """Chunk a whole stream of pages (convenience for callers that need no interleaving)."""
    chunker = Chunker(
        tokenizer, chunk_tokens=chunk_tokens, overlap_tokens=overlap_tokens, max_chars=max_chars
    )
    for page in pages:
        yield from chunker.add_page(page)
    yield from chunker.finish()
