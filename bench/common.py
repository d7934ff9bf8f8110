"""Set-up shared by the benchmarks: a database of their own, and the corpus."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devtools.corpus import CORPUS_DIR  # noqa: E402

# The corpus the benchmarks read: ../shared/corpus, or FCA_CORPUS_DIR (as for the tests).
CORPUS = CORPUS_DIR

uses_embedded_server = False
"""Whether use_bench_database chose the embedded server (whose processes can be measured)."""


def use_bench_database(name: str) -> None:
    """Point Django at database ``name`` (beside DATABASE_URL's, or on the embedded server)
    before settings are read, so a benchmark never touches the working data."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    global uses_embedded_server
    url = os.environ.get("DATABASE_URL")
    uses_embedded_server = not url
    if url:
        base, _, _old = url.rpartition("/")
        os.environ["DATABASE_URL"] = f"{base}/{name}"
    else:
        from fca_site import embedded_db

        os.environ["DATABASE_URL"] = embedded_db.ensure_running(database=name)
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-not-a-secret-" + "x" * 30)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fca_site.settings")
    os.environ.setdefault("DJANGO_LOG_LEVEL", "WARNING")
