"""How the admin shows a document's task runs (django-celery-results TaskResults): state,
start, duration, worker, and the structured result or the error."""

from __future__ import annotations

import json
from typing import Any

from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django_celery_results.models import TaskResult

from documents.presenters import stamp_label

FINAL_TASK_STATES = frozenset({"SUCCESS", "FAILURE", "RETRY", "REVOKED"})


def task_state_badge(state: str) -> SafeString:
    """A Celery state as a pill coloured like the document statuses."""
    return format_html('<span class="fca-state fca-state-{}">{}</span>', state.lower(), state)


def run_seconds(run: TaskResult) -> float | None:
    """How long the run took (or has been running), None before it started."""
    if not run.date_started:
        return None
    end = run.date_done if run.status in FINAL_TASK_STATES else timezone.now()
    if end is None:
        return None
    return max(0.0, (end - run.date_started).total_seconds())


def run_payload(run: TaskResult) -> Any:
    """The run's stored result, decoded from JSON (the text itself when it is not JSON)."""
    if not run.result:
        return None
    try:
        return json.loads(run.result)
    except ValueError:
        return run.result


def run_summary(run: TaskResult) -> str:
    """One line for a run: what it produced, or the error it ended with."""
    payload = run_payload(run)
    if run.status in ("PENDING", "STARTED", "RECEIVED"):
        return "running…"
    if isinstance(payload, dict) and "exc_type" in payload:
        message = " ".join(map(str, payload.get("exc_message") or []))
        return f"{payload['exc_type']}: {message}"
    if isinstance(payload, dict) and payload.get("status") == "success":
        seconds = (payload.get("seconds") or {}).get("total")
        took = f" in {seconds:.1f} s" if isinstance(seconds, int | float) else ""
        return f"{payload.get('pages')} pages, {payload.get('chunks')} chunks{took}"
    if isinstance(payload, dict) and payload.get("status") == "skipped":
        return f"skipped: {payload.get('reason', 'no reason given')}"
    if payload is None:
        return "–"
    return json.dumps(payload)[:200]


def run_outcome(run: TaskResult) -> SafeString:
    """The run's summary, with the structured result or the traceback one click away."""
    payload = run_payload(run)
    details: SafeString | str = ""
    if run.traceback:
        details = format_html(
            '<details><summary>traceback</summary><pre class="fca-pre">{}</pre></details>',
            run.traceback,
        )
    elif isinstance(payload, dict):
        details = format_html(
            '<details><summary>result</summary><pre class="fca-pre">{}</pre></details>',
            json.dumps(payload, indent=2, sort_keys=True),
        )
    css = "fca-run-error" if run.status in ("FAILURE", "RETRY") else "fca-run-result"
    return format_html('<span class="{}">{}</span>{}', css, run_summary(run), details)


def task_runs_table(runs: list[TaskResult]) -> SafeString:
    """A document's task runs, newest first: state, times, duration, worker and outcome."""
    if not runs:
        return mark_safe('<p class="fca-note">No task run stored yet.</p>')
    rows = format_html_join(
        "",
        '<tr class="fca-run"><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td>'
        "<td>{}</td></tr>",
        (
            (
                reverse("admin:django_celery_results_taskresult_change", args=[run.pk]),
                stamp_label(run.date_started or run.date_created),
                task_state_badge(run.status),
                _seconds_label(run_seconds(run)),
                run.worker or "–",
                run_outcome(run),
            )
            for run in runs
        ),
    )
    return format_html(
        '<table class="fca-runs"><thead><tr><th>started (newest first)</th><th>state</th>'
        "<th>duration</th><th>worker</th><th>result or error</th></tr></thead>"
        "<tbody>{}</tbody></table>",
        rows,
    )


def _seconds_label(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {seconds % 60:.0f} s"
