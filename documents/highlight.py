"""Excerpts of chunk text, and the query's words highlighted in them, safely (HTML-escaped).

No page, command or API response shows more of a chunk than :data:`CHUNK_TEXT_CHARS`: chunks are
capped at ``RAG_CHUNK_MAX_CHARS`` (4,000 by default), but a larger cap, or chunks written before
the cap existed, may hold megabytes.
"""

from __future__ import annotations

import re

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

SNIPPET_CHARS = 400
# The most of one chunk's text a page, the search command or an API hit shows.
CHUNK_TEXT_CHARS = 5000
_WORD = re.compile(r"\w{2,}", re.UNICODE)


def query_terms(query: str) -> list[str]:
    """Distinct words of the query, longest first (so longer matches win)."""
    return sorted({w.lower() for w in _WORD.findall(query)}, key=len, reverse=True)


def _terms_pattern(query: str) -> re.Pattern[str] | None:
    terms = query_terms(query)
    if not terms:
        return None
    return re.compile(r"\b(" + "|".join(map(re.escape, terms)) + r")\w*", re.I)


def _marked(text: str, pattern: re.Pattern[str]) -> str:
    parts: list[str] = []
    last = 0
    for match in pattern.finditer(text):
        parts.append(escape(text[last : match.start()]))
        parts.append(f"<mark>{escape(match.group(0))}</mark>")
        last = match.end()
    parts.append(escape(text[last:]))
    return "".join(parts)


def highlight(text: str, query: str, *, width: int = SNIPPET_CHARS) -> SafeString:
    """A window of ``text`` around the first query word, with each word wrapped in <mark>.

    Words match at their start, so "ingest" also marks "ingestion" (as stemming would find).
    """
    pattern = _terms_pattern(query)
    start = 0
    if pattern is not None:
        first = pattern.search(text)
        if first is not None:
            start = max(0, first.start() - width // 4)
    window = text[start : start + width]
    prefix = "…" if start > 0 else ""
    suffix = "…" if start + width < len(text) else ""
    if pattern is None:
        return mark_safe(prefix + escape(window) + suffix)  # noqa: S308 - escaped just here
    return mark_safe(prefix + _marked(window, pattern) + suffix)  # noqa: S308 - parts escaped


def excerpt(text: str, limit: int = CHUNK_TEXT_CHARS, *, total: int | None = None) -> str:
    """``text`` when it is at most ``limit`` characters, else its start and how much is left
    out. ``total``: the length of the whole text when ``text`` is only its start (read so from
    the database)."""
    total = len(text) if total is None else total
    if total <= limit:
        return text
    return f"{text[:limit]}… ({total - limit:,} more characters)"


def mark_words(text: str, query: str) -> SafeString:
    """All of ``text``, HTML-escaped, with the query's words wrapped in <mark>."""
    pattern = _terms_pattern(query)
    if pattern is None:
        return mark_safe(escape(text))  # noqa: S308 - escaped just here
    return mark_safe(_marked(text, pattern))  # noqa: S308 - every part is escaped
