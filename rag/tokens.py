"""Tokenizers that tell the chunker how many of the embedder's own tokens each word costs.

A chunk must never exceed the model's input limit, or the model silently drops its tail. So the
chunker measures text with the same tokenizer the model uses (WordPiece for all-MiniLM-L6-v2).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple, Protocol


class Word(NamedTuple):
    """A span of text the chunker never splits, with its cost in tokens.

    A tuple, not a dataclass: a page makes hundreds of them and a tuple is built several times
    faster. ``piece`` marks part of a word cut because it alone was too long: only there may
    the tokens of a joined text differ from the sum of its words' tokens.
    """

    start: int
    end: int
    tokens: int
    piece: bool = False


class Tokenizer(Protocol):
    """What the chunker needs from a tokenizer."""

    max_tokens: int
    """Content tokens one model input may hold (special tokens already subtracted)."""

    def words(self, text: str, max_word_tokens: int) -> list[Word]:
        """Split ``text`` into words; a word longer than ``max_word_tokens`` is cut into pieces
        (marked ``piece``). Any run of whole words, joined as in ``text`` or by whitespace, must
        count (:meth:`count`) as the sum of their tokens: the chunker relies on it."""
        ...

    def count(self, text: str) -> int:
        """Content tokens in ``text``."""
        ...


class WordPieceTokenizer:
    """The model's own tokenizer (``tokenizer.json``), run by the Rust ``tokenizers`` library."""

    def __init__(self, tokenizer_file: Path, *, max_seq_length: int) -> None:
        from tokenizers import Tokenizer as HFTokenizer

        self._tokenizer = HFTokenizer.from_file(str(tokenizer_file))
        # We measure; we never want the tokenizer to truncate or pad behind our back.
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        special = self._tokenizer.num_special_tokens_to_add(False)
        self.max_tokens = max_seq_length - special

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def words(self, text: str, max_word_tokens: int) -> list[Word]:
        encoding = self._tokenizer.encode(text, add_special_tokens=False)
        words: list[Word] = []
        current_id: int | None = None
        start = end = count = 0
        piece = False
        for word_id, (tok_start, tok_end) in zip(encoding.word_ids, encoding.offsets, strict=True):
            if word_id != current_id:
                if count:
                    words.append(Word(start, end, count, piece))
                current_id, start, count, piece = word_id, tok_start, 0, False
            elif count >= max_word_tokens:
                words.append(Word(start, end, count, True))
                start, count, piece = tok_start, 0, True
            end = tok_end
            count += 1
        if count:
            words.append(Word(start, end, count, piece))
        return words


_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


class SimpleTokenizer:
    """One token per run of word characters or per punctuation mark (for the hash embedder)."""

    def __init__(self, *, max_tokens: int = 256) -> None:
        self.max_tokens = max_tokens

    def count(self, text: str) -> int:
        return sum(1 for _ in _WORD.finditer(text))

    def words(self, text: str, max_word_tokens: int) -> list[Word]:
        return [Word(m.start(), m.end(), 1) for m in _WORD.finditer(text)]
