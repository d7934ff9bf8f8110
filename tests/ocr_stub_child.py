"""The page reader's child with a stand-in for Tesseract, for tests of the parent's budget: it
runs ``rag.page_reader_child`` with ``rag.ocr.OcrEngine`` replaced by :class:`StubEngine`.

``FCA_STUB_OCR`` says how a recognition behaves: ``stuck`` never ends (as a Tesseract that
ignored its own timeout would), a number of seconds is how long each one takes.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from rag import ocr, page_reader_child


class StubEngine:
    """Reads every page image as the same sentence, as slowly as ``FCA_STUB_OCR`` says."""

    def __init__(self, **_settings) -> None:
        self._behaviour = os.environ["FCA_STUB_OCR"]

    def read(self, image) -> ocr.OcrText:
        if self._behaviour == "stuck":
            threading.Event().wait()
        time.sleep(float(self._behaviour))  # a recognition that takes this long
        return ocr.OcrText(text="Recognised by the stand-in engine.", confidence=90.0, words=5)

    def close(self) -> None:
        pass


if __name__ == "__main__":
    ocr.OcrEngine = StubEngine  # type: ignore[misc, assignment]
    sys.exit(page_reader_child.main(sys.argv[1:]))
