"""Settings come from the environment; production refuses to start without a strong secret key."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fca_site.secret_key import EXAMPLE_VALUE
from tests.conftest import ROOT

PRODUCTION_DB = "postgresql://u:p@db.invalid:5432/fca"
STRONG_KEY = "x7#kq2!v9@mz4$w8^r1&t6*y3(p0)s5-u_n=b+c[d]e{f}g|h;j:l,o.i"


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
    env = {"DATABASE_URL": PRODUCTION_DB, "DJANGO_SECRET_KEY": STRONG_KEY}
    assert run_settings(env).stdout.strip() == "False"
    assert run_settings({**env, "DJANGO_DEBUG": "1"}).stdout.strip() == "True"


def test_deploy_checks_pass_with_the_documented_production_environment():
    env = {
        "DATABASE_URL": "postgresql://u:p@db.invalid:5432/fca",
        "DJANGO_SECRET_KEY": STRONG_KEY,
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
        env={**base, "DATABASE_URL": url, "DJANGO_SECRET_KEY": STRONG_KEY},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "does not have the pgvector extension" in result.stderr


WEAK_KEYS = {
    "short": ("k7#Q2!v9@mz4$w8^r1&t6", "it has 21 characters; at least 50 are needed"),
    "few distinct characters": ("ab" * 40, "it has 2 distinct characters"),
    "django-insecure prefix": (
        "django-insecure-" + STRONG_KEY,
        "prefix of Django's generated test keys",
    ),
    "the example value": (EXAMPLE_VALUE, "the example value from .env.example"),
}


@pytest.mark.parametrize(("key", "reason"), WEAK_KEYS.values(), ids=WEAK_KEYS.keys())
def test_a_weak_secret_key_is_refused_at_start_in_production(key, reason):
    result = run_settings({"DATABASE_URL": PRODUCTION_DB, "DJANGO_SECRET_KEY": key})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is refused" in result.stderr
    assert reason in result.stderr
    assert "secrets.token_urlsafe(50)" in result.stderr


def test_a_weak_secret_key_is_accepted_with_debug_on():
    env = {"DATABASE_URL": PRODUCTION_DB, "DJANGO_SECRET_KEY": "dev", "DJANGO_DEBUG": "1"}
    result = run_settings(env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def test_env_example_shows_the_refused_example_value():
    """The value people copy from .env.example is the one the refusal knows by name."""
    example = (ROOT / ".env.example").read_text()
    assert f"# DJANGO_SECRET_KEY={EXAMPLE_VALUE}\n" in example


def test_worker_child_limits_reach_the_celery_app_config():
    code = (
        "from fca_site.celery import app; "
        "print(app.conf.worker_max_memory_per_child, app.conf.worker_max_tasks_per_child)"
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_"))}

    def conf(env: dict[str, str]) -> str:
        result = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env={**base, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    assert conf({}) == "1048576 None"
    limits = {
        "CELERY_WORKER_MAX_MEMORY_PER_CHILD": "250000",
        "CELERY_WORKER_MAX_TASKS_PER_CHILD": "7",
    }
    assert conf(limits) == "250000 7"
    assert conf({"CELERY_WORKER_MAX_MEMORY_PER_CHILD": "0"}) == "None None"
