"""Chunking: sized in the embedder's tokens, never over the model limit, pages tracked."""

from __future__ import annotations

import pytest

from devtools.corpus import load_manifest
from rag.chunking import TOKENIZE_WINDOW_CHARS, Chunker, chunk_pages
from rag.embedding import default_model_path
from rag.parsing import Page, PdfDocument
from rag.tokens import SimpleTokenizer, WordPieceTokenizer


@pytest.fixture(scope="module")
def wordpiece() -> WordPieceTokenizer:
    return WordPieceTokenizer(default_model_path() / "tokenizer.json", max_seq_length=256)


def words(n: int, start: int = 0) -> str:
    return " ".join(f"w{i}." if i % 10 == 9 else f"w{i}" for i in range(start, start + n))


def test_chunks_cover_every_word_once_plus_overlap_and_track_pages():
    tokenizer = SimpleTokenizer(max_tokens=256)
    pages = [Page(1, words(150)), Page(2, ""), Page(3, words(150, start=150))]
    chunks = list(chunk_pages(pages, tokenizer, chunk_tokens=50, overlap_tokens=10))

    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert all(c.token_count <= 50 for c in chunks)
    seen = [w.rstrip(".") for c in chunks for w in c.text.split()]
    assert {f"w{i}" for i in range(300)} == set(seen)
    assert chunks[0].page_start == 1
    assert chunks[-1].page_end == 3
    spanning = [c for c in chunks if c.page_start != c.page_end]
    assert spanning and all((c.page_start, c.page_end) == (1, 3) for c in spanning)
    assert all(c.page_start in (1, 3) and c.page_end in (1, 3) for c in chunks)


def test_consecutive_chunks_share_the_overlap():
    tokenizer = SimpleTokenizer()
    chunks = list(chunk_pages([Page(1, words(400))], tokenizer, chunk_tokens=60, overlap_tokens=12))
    for previous, current in zip(chunks, chunks[1:], strict=False):
        head = current.text.split()[0]
        assert head in previous.text.split()[-12:], (previous.text, current.text)
        assert head[0].isalnum()


def test_chunks_prefer_to_end_at_a_sentence():
    tokenizer = SimpleTokenizer()
    chunks = list(chunk_pages([Page(1, words(400))], tokenizer, chunk_tokens=60, overlap_tokens=0))
    # Sentences end every 10 words ("w9."): every full chunk ends on one.
    assert all(c.text.endswith(".") for c in chunks[:-1])


def test_a_word_longer_than_a_chunk_is_cut_not_dropped(wordpiece):
    giant = "x" * 3000
    chunks = list(
        chunk_pages([Page(1, f"start {giant} end")], wordpiece, chunk_tokens=100, overlap_tokens=0)
    )
    assert all(c.token_count <= 100 for c in chunks)
    assert (
        "".join(
            c.text.replace("start", "").replace("end", "").replace(" ", "") for c in chunks
        ).count("x")
        == 3000
    )


def test_words_cut_into_pieces_are_counted_as_the_model_sees_them(wordpiece):
    long_word = "pneumonoultramicroscopicsilicovolcanoconiosis"  # about 15 WordPiece tokens
    text = "Intro. " + " ".join([long_word] * 6) + " outro."
    assert any(word.piece for word in wordpiece.words(text, 8))

    chunks = list(chunk_pages([Page(1, text)], wordpiece, chunk_tokens=16, overlap_tokens=4))

    assert len(chunks) > 6
    for chunk in chunks:
        assert wordpiece.count(chunk.text) == chunk.token_count <= wordpiece.max_tokens
    assert "".join(c.text for c in chunks).count("pneumono") >= 6


def test_chunk_size_is_capped_at_the_model_input_limit(wordpiece):
    chunker = Chunker(wordpiece, chunk_tokens=10_000, overlap_tokens=50)
    assert chunker.chunk_tokens == wordpiece.max_tokens == 254


READABLE = sorted(
    name
    for name, entry in load_manifest().items()
    if entry.page_count and entry.extractable_chars > 0 and entry.encrypted != "needs-password"
)


@pytest.mark.parametrize("filename", READABLE)
def test_no_chunk_of_the_corpus_exceeds_the_model_limit(corpus, wordpiece, filename):
    with corpus[filename].path.open("rb") as fh:
        pdf = PdfDocument(fh, max_pages=5000)
        chunks = list(chunk_pages(pdf.pages(), wordpiece, chunk_tokens=254, overlap_tokens=32))
    assert chunks
    for chunk in chunks:
        # Re-count independently of the chunker: the model would see exactly this many tokens.
        assert wordpiece.count(chunk.text) == chunk.token_count <= wordpiece.max_tokens
        assert 1 <= chunk.page_start <= chunk.page_end <= pdf.page_count


class RecordingTokenizer:
    """A tokenizer that remembers the longest text it was given."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.max_tokens = inner.max_tokens
        self.longest = 0

    def words(self, text, max_word_tokens):
        self.longest = max(self.longest, len(text))
        return self.inner.words(text, max_word_tokens)

    def count(self, text):
        self.longest = max(self.longest, len(text))
        return self.inner.count(text)


def test_a_megabyte_word_makes_chunks_within_the_character_cap_and_loses_nothing(wordpiece):
    # A run without spaces is one [UNK] token to WordPiece, whatever its length.
    giant = "A" * 2**20
    pages = [Page(1, f"Intro words. {giant} and the end."), Page(2, "Next page.")]
    recording = RecordingTokenizer(wordpiece)

    chunks = list(
        chunk_pages(pages, recording, chunk_tokens=200, overlap_tokens=32, max_chars=4000)
    )

    assert all(len(c.text) <= 4000 for c in chunks)
    assert all(wordpiece.count(c.text) == c.token_count <= 200 for c in chunks)
    # Never a whole page, nor the whole word, handed to the tokenizer.
    assert recording.longest <= TOKENIZE_WINDOW_CHARS + 100
    # Consecutive chunks overlap by little: the word is in about len / cap chunks, all of it.
    assert len(chunks) < 1.2 * len(giant) / 4000
    assert sum(c.text.count("A") for c in chunks) >= len(giant)
    assert chunks[0].text.startswith("Intro words.")
    assert chunks[-1].text.endswith("and the end.\nNext page.")
    assert (chunks[-1].page_start, chunks[-1].page_end) == (1, 2)


def test_the_character_cap_holds_on_any_mix_of_words_and_long_runs():
    tokenizer = SimpleTokenizer()
    text = " ".join(
        ["word"] * 50 + ["x" * 5000] + ["a.b" * 900] + ["short."] * 30 + ["y" * 199] * 40
    )
    pages = [Page(n, text) for n in range(1, 4)]
    for max_chars in (64, 500, 4000):
        chunks = list(
            chunk_pages(pages, tokenizer, chunk_tokens=100, overlap_tokens=20, max_chars=max_chars)
        )
        assert chunks and all(len(c.text) <= max_chars for c in chunks), max_chars
        assert all(c.token_count <= 100 for c in chunks)
        assert sum(c.text.count("x") for c in chunks) >= 3 * 5000


def test_the_character_cap_changes_nothing_for_prose():
    tokenizer = SimpleTokenizer()
    pages = [Page(1, words(400)), Page(2, words(400, start=400))]
    capped = list(chunk_pages(pages, tokenizer, chunk_tokens=60, overlap_tokens=12))
    uncapped = list(
        chunk_pages(pages, tokenizer, chunk_tokens=60, overlap_tokens=12, max_chars=10**9)
    )
    assert capped == uncapped
