"""One function turns a Django connection's settings into a database URL, for the async service
(documents.ingestion) and for the subprocesses the tests and benchmarks start (devtools)."""

from __future__ import annotations

import dj_database_url
import pytest
from django.db import connection

from devtools.workers import project_env
from documents.ingestion import async_database_url
from fca_site.database import database_url

KEYS = ("NAME", "USER", "PASSWORD", "HOST", "PORT")


@pytest.mark.parametrize(
    "settings_dict",
    [
        {"NAME": "test_fca", "USER": "postgres", "PASSWORD": "", "HOST": "/tmp/a b/s", "PORT": ""},
        {"NAME": "fca", "USER": "u@x", "PASSWORD": "p:/@?&w", "HOST": "db.example", "PORT": 5433},
    ],
)
def test_the_url_parses_back_to_the_same_connection_settings(settings_dict):
    parsed = dj_database_url.parse(database_url(settings_dict))
    # fca_site.database moves a socket directory from OPTIONS to HOST, as here.
    parsed["HOST"] = parsed["HOST"] or parsed.get("OPTIONS", {}).get("host", "")
    assert {key: parsed[key] for key in KEYS} == {key: settings_dict[key] for key in KEYS}


@pytest.mark.django_db
def test_service_and_subprocesses_get_the_url_of_the_live_test_database():
    live = connection.settings_dict
    assert live["NAME"].startswith("test_")
    assert async_database_url() == database_url(live, driver="postgresql+psycopg")
    env = project_env(broker_url="redis://127.0.0.1:6379/15", queue="unused")
    assert env["DATABASE_URL"] == database_url(live)
    assert dj_database_url.parse(env["DATABASE_URL"])["NAME"] == live["NAME"]
