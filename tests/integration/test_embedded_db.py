"""The embedded PostgreSQL: processes starting at once share one server on one data folder."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest

from fca_site import embedded_db
from tests.conftest import ROOT

pytestmark = pytest.mark.integration

START = (
    "import sys; from pathlib import Path; from fca_site import embedded_db; "
    "print(embedded_db.ensure_running(Path(sys.argv[1]), database='race'))"
)


def test_processes_starting_at_once_share_one_server(tmp_path):
    data_dir = tmp_path / "pg"
    try:
        racers = [
            subprocess.Popen(
                [sys.executable, "-c", START, str(data_dir)],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(3)
        ]
        results = [racer.communicate(timeout=120) for racer in racers]
        assert all(r.returncode == 0 for r in racers), [err for _, err in results]
        urls = {out.strip() for out, _ in results}
        assert len(urls) == 1
        assert embedded_db.is_running(data_dir)

        socket_dir = urls.pop().split("host=", 1)[1]
        with psycopg.connect(host=socket_dir, user="postgres", dbname="race") as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            assert conn.execute("SELECT '[1,2,3]'::vector <=> '[1,2,3]'::vector").fetchone() == (
                0.0,
            )
            postmasters = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'checkpointer'"
            ).fetchone()
        assert postmasters == (1,)
    finally:
        embedded_db.stop(data_dir)
    assert not embedded_db.is_running(data_dir)
