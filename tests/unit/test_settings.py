"""Settings come from the environment; production refuses to start without a secret key."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT


def run_settings(env: dict[str, str]) -> subprocess.CompletedProcess:
    code = "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_"))}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "fca_site.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_secret_key_is_required_when_not_on_the_embedded_development_setup():
    result = run_settings({"DATABASE_URL": "postgresql://u:p@db.invalid:5432/fca"})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


def test_debug_is_off_unless_asked_for():
    env = {"DATABASE_URL": "postgresql://u:p@db.invalid:5432/fca", "DJANGO_SECRET_KEY": "k" * 50}
    assert run_settings(env).stdout.strip() == "False"
    assert run_settings({**env, "DJANGO_DEBUG": "1"}).stdout.strip() == "True"


def test_deploy_checks_pass_with_the_documented_production_environment():
    env = {
        "DATABASE_URL": "postgresql://u:p@db.invalid:5432/fca",
        "DJANGO_SECRET_KEY": "x7#kq2!v9@mz4$w8^r1&t6*y3(p0)s5-u_n=b+c[d]e{f}g|h;j:l,o.i",
        "DJANGO_DEBUG": "0",
        "DJANGO_ALLOWED_HOSTS": "fca.example.com",
        "DJANGO_SECURE_COOKIES": "1",
        "DJANGO_SECURE_SSL_REDIRECT": "1",
        "DJANGO_SECURE_HSTS_SECONDS": "31536000",
    }
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_"))}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_database_without_pgvector_is_refused_with_a_clear_message():
    """The machine's own PostgreSQL (no pgvector) stands in for a misconfigured DATABASE_URL."""
    import psycopg
    import pytest

    url = os.environ.get("FCA_NO_PGVECTOR_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            has_vector = conn.execute(
                "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"
            ).fetchone()
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL without pgvector reachable at {url}: {exc}")
    if has_vector:
        pytest.skip(f"the PostgreSQL at {url} has pgvector; nothing to refuse")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_"))}
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--plan"],
        cwd=ROOT,
        env={**base, "DATABASE_URL": url, "DJANGO_SECRET_KEY": "k" * 50},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "does not have the pgvector extension" in result.stderr
