"""The result backend: STARTED and RETRY are stored best-effort, outcomes never silently lost."""

from __future__ import annotations

import pytest
from celery import states
from django.db import OperationalError
from django_celery_results.models import TaskResult

from fca_site.celery import app
from fca_site.results_backend import DatabaseBackend

pytestmark = pytest.mark.django_db


@pytest.fixture
def database_down(monkeypatch):
    def refuse(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(TaskResult.objects, "store_result", refuse)


def test_the_app_stores_results_through_this_backend():
    assert isinstance(app.backend, DatabaseBackend)


def test_states_are_stored_as_usual_when_the_database_answers():
    app.backend.store_result("task-up", {"pid": 1}, states.STARTED)
    assert TaskResult.objects.get(task_id="task-up").status == states.STARTED


@pytest.mark.parametrize("state", [states.STARTED, states.RETRY])
def test_informational_states_are_skipped_when_the_database_is_down(database_down, state, caplog):
    app.backend.store_result("task-down", {"pid": 1}, state)
    assert f"result state={state} not stored task_id=task-down" in caplog.text


@pytest.mark.parametrize("state", [states.SUCCESS, states.FAILURE])
def test_outcomes_still_fail_loudly_when_the_database_is_down(database_down, state):
    with pytest.raises(OperationalError):
        app.backend.store_result("task-down", {"chunks": 1}, state)
