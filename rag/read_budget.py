"""The page reader's time budget, kept by the parent from the child's messages (the protocol is
in :mod:`rag.page_reader`).

Two limits (``RAGConfig.parse_*``, ``ocr_*``):

- a step: opening the file and reading each page may take ``parse_page_seconds``; a page's OCR
  (rendering it, as long as a page may take, then recognising it, stopped by Tesseract itself
  at ``ocr_page_seconds``) may take both;
- the document: reading may at no point have taken longer than ``parse_base_seconds`` plus
  ``parse_seconds_per_page`` for each page the child has read or begun, plus
  ``ocr_seconds_per_page`` for each page OCR'd (which bounds the whole document by its pages,
  and stops a document whose every page is slow after a few of them rather than at the task's
  time limit); and reading text layers (OCR not counted) may take ``parse_max_seconds`` in all,
  so that thousands of pages each just within the rate still end well before that limit.

Seconds are the child's own, measured around its work on each page; a page's OCR counts its
own seconds even while other pages are recognised beside it. Time the child waits for the
consumer (a full pipe) is not counted.

The child reads ahead while pages are recognised, so the parent never waits for one message
with a single page's limit in mind: it follows the child's own rule (``read_pages`` in
:mod:`rag.page_reader_child`) on the same counts to know what the child is doing. The child
reads the next page (``parse_page_seconds``, twice that right after beginning a page's OCR, as
it renders that page first) unless it waits for the first page it has not sent to be
recognised: it has read every page, or ``ocr_threads`` pages are in OCR, or ``pages_ahead``
wait to be sent. Then the next message comes within that page's OCR limit.
"""

from __future__ import annotations

from collections import deque

from rag.config import RAGConfig
from rag.errors import TooComplexError


class ReadBudget:
    """What the child has read, begun and sent, and how long its next step may take."""

    def __init__(self, config: RAGConfig, *, ocr_threads: int, pages_ahead: int) -> None:
        self._config = config
        self.ocr_threads = ocr_threads
        self.pages_ahead = pages_ahead
        self.page_count = 0
        self.pages_read = 0  # pages received
        self.pages_started = 0  # the last page the child has read, or begun OCR of
        self._ocr_started = 0  # pages the child has begun OCR of
        self._in_ocr: deque[int] = deque()  # those whose page has not come yet
        self._rendering = False  # the last message began a page's OCR: the child renders it
        self._spent = 0.0
        self._text_spent = 0.0  # reading text layers and opening the file: OCR not counted

    def opened(self, page_count: int, seconds: float) -> None:
        """The child opened the file in ``seconds``."""
        self.page_count = page_count
        self._account(0, seconds)

    def began_ocr(self, number: int, seconds: float) -> None:
        """Page ``number``'s text layer was read in ``seconds``; its OCR begins."""
        self._started(number)
        self._ocr_started += 1
        self._in_ocr.append(number)
        self._rendering = True
        self._account(number, seconds)

    def read_ahead(self, number: int, seconds: float) -> None:
        """Page ``number`` was read in ``seconds``; it comes after the pages in OCR before it."""
        self._started(number)
        self._rendering = False
        self._account(number, seconds)

    def received(self, number: int, seconds: float, ocr_seconds: float) -> None:
        """Page ``number`` came, with its seconds not counted yet."""
        self._started(number)
        self._rendering = False
        if self._in_ocr and self._in_ocr[0] == number:
            self._in_ocr.popleft()
        if ocr_seconds > self.ocr_limit():
            raise self.over_ocr_budget(number)
        self.pages_read += 1
        self._account(number, seconds, ocr_seconds)

    def time_left(self) -> tuple[float, float]:
        """Seconds the step under way may still take, and the document's budget left."""
        document_left = self.allowance() - self._spent
        if self._reads_text_layer():
            document_left = min(document_left, self._text_left())
        return self.step_limit(), document_left

    def _reads_text_layer(self) -> bool:
        """Whether the child's step under way is reading a text layer (what the total counts),
        not rendering a page for OCR nor waiting for a recognition."""
        return not self.waits_for_ocr() and not self._rendering

    def _text_left(self) -> float:
        return self._config.parse_max_seconds - self._text_spent

    def _started(self, number: int) -> None:
        self.pages_started = max(self.pages_started, number)

    def waits_for_ocr(self) -> bool:
        """Whether the child waits for the first page it has not sent to be recognised, rather
        than reads (see the module's docstring)."""
        ahead = self.pages_started - self.pages_read
        return ahead > 0 and (
            self.pages_started >= self.page_count
            or len(self._in_ocr) >= self.ocr_threads
            or ahead >= self.pages_ahead
        )

    def allowance(self) -> float:
        """Seconds reading may have taken once the step under way ends: the document's budget
        for the pages the child has read or begun, and the one it reads next."""
        config = self._config
        return (
            config.parse_base_seconds
            + config.parse_seconds_per_page * (self.pages_started + 1)
            + config.ocr_seconds_per_page * self._ocr_started
        )

    def ocr_limit(self) -> float:
        """Longest one page's OCR may take: rendering it (as long as parsing a page may take)
        and recognising it."""
        return self._config.parse_page_seconds + self._config.ocr_page_seconds

    def step_limit(self) -> float:
        """Longest the child may take to send its next message: reading the next page (after
        rendering the page whose OCR it has just begun), or, when it waits for a recognition,
        the OCR of the first page it has not sent."""
        if self.waits_for_ocr():
            return self.ocr_limit()
        return self._config.parse_page_seconds * (2 if self._rendering else 1)

    def _account(self, number: int, seconds: float, ocr_seconds: float = 0.0) -> None:
        """Count page ``number``'s seconds (0: opening the file) against the budget."""
        self._spent += seconds + ocr_seconds
        self._text_spent += seconds
        if seconds > self._config.parse_page_seconds:
            raise self.over_page_budget(number)
        if self._spent > self.allowance():
            raise self.over_document_budget()
        if self._text_left() < 0:
            raise self.over_text_total()

    def timed_out(self, page_left: float, document_left: float) -> TooComplexError:
        """The error for a next message that did not come within ``min(page_left,
        document_left)`` seconds."""
        if page_left > document_left:
            if self._reads_text_layer() and self._text_left() <= document_left:
                return self.over_text_total()
            return self.over_document_budget()
        if not self.page_count:
            return self.over_page_budget(0)
        if self.waits_for_ocr():
            return self.over_ocr_budget(self.pages_read + 1)
        if self._rendering:
            return TooComplexError(
                f"Rendering page {self.pages_started} of {self.page_count} for OCR and reading "
                f"page {self.pages_started + 1} took more than {page_left:g} s "
                f"(RAG_PARSE_PAGE_SECONDS={self._config.parse_page_seconds:g} for each): their "
                "content is too complex to read in time."
            )
        return self.over_page_budget(self.pages_started + 1)

    def over_page_budget(self, number: int) -> TooComplexError:
        """Page ``number`` (0: opening the file) took longer than a page may."""
        limit = self._config.parse_page_seconds
        if not number:
            return TooComplexError(
                f"Opening the PDF took more than {limit:g} s (RAG_PARSE_PAGE_SECONDS): its "
                "structure is too complex to read in time."
            )
        return TooComplexError(
            f"Page {number} of {self.page_count} took more than {limit:g} s to read "
            "(RAG_PARSE_PAGE_SECONDS): its content is too complex to read in time."
        )

    def over_ocr_budget(self, number: int) -> TooComplexError:
        """Page ``number``'s OCR took longer than :meth:`ocr_limit`."""
        return TooComplexError(
            f"OCR of page {number} of {self.page_count} took more than {self.ocr_limit():g} s "
            "(RAG_PARSE_PAGE_SECONDS to render it plus RAG_OCR_PAGE_SECONDS): the page image is "
            "too complex to read in time."
        )

    def over_text_total(self) -> TooComplexError:
        """Reading text layers took longer than ``parse_max_seconds`` in all."""
        return TooComplexError(
            f"Reading the PDF's text up to page {min(self.pages_started + 1, self.page_count)} "
            f"of {self.page_count} took more than {self._config.parse_max_seconds:g} s in all "
            "(RAG_PARSE_MAX_SECONDS): its content is too complex to read in time."
        )

    def over_document_budget(self) -> TooComplexError:
        """Reading took longer than :meth:`allowance`."""
        config = self._config
        step = (
            f"up to page {min(self.pages_started + 1, self.page_count)} of {self.page_count}"
            if self.page_count
            else "to open it"
        )
        return TooComplexError(
            f"Reading the PDF {step} took more than {self.allowance():g} s (the budget: "
            f"RAG_PARSE_BASE_SECONDS={config.parse_base_seconds:g} plus "
            f"RAG_PARSE_SECONDS_PER_PAGE={config.parse_seconds_per_page:g} for each page, and "
            f"RAG_OCR_SECONDS_PER_PAGE={config.ocr_seconds_per_page:g} for each page OCR'd): "
            "its content is too complex to read in time."
        )
