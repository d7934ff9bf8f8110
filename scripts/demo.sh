#!/usr/bin/env bash
# The main job on the embedded defaults: install, start PostgreSQL (embedded) and a Celery
# worker, migrate, ingest PDFs rendered from the project's own documentation, show the result,
# then stop everything this script started.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

worker_pid=""
started_db=0
cleanup() {
    if [ -n "$worker_pid" ] && kill -0 "$worker_pid" 2>/dev/null; then
        log "Stopping the worker"
        kill -TERM "$worker_pid" 2>/dev/null || true
        for _ in $(seq 1 60); do kill -0 "$worker_pid" 2>/dev/null || break; sleep 0.5; done
        kill -KILL "$worker_pid" 2>/dev/null || true
    fi
    if [ "$started_db" = 1 ]; then
        log "Stopping the embedded PostgreSQL"
        "$PY" -m fca_site.embedded_db stop >/dev/null 2>&1 || true
    fi
    stop_own_redis
}
# Set before setup_all, which may start Redis: a step that fails after it still stops that Redis.
trap cleanup EXIT
setup_all

MANAGE=("$PY" "$ROOT/manage.py")
# Commands print their own report; INFO logs go to the worker's log file only.
export DJANGO_LOG_LEVEL="${DJANGO_LOG_LEVEL:-WARNING}"
mkdir -p "$ROOT/.data/logs"
if [ -z "${DATABASE_URL:-}" ] && ! "$PY" -m fca_site.embedded_db status >/dev/null 2>&1; then
    started_db=1
fi

log "Starting the database and applying migrations"
"$PY" -m fca_site.embedded_db start >/dev/null 2>&1 || true
"${MANAGE[@]}" migrate --noinput >/dev/null

log "Creating an admin user (once)"
"${MANAGE[@]}" demo_admin

log "Rendering sample PDFs from the project's documentation"
"${MANAGE[@]}" make_sample_pdfs "$ROOT/.data/samples"

log "Starting a Celery worker with its embedded beat (the stuck-document sweep; log: .data/logs/worker.log)"
DJANGO_LOG_LEVEL=INFO "$VENV/bin/celery" -A fca_site worker -B --loglevel=INFO --concurrency=2 \
    --schedule "$ROOT/.data/celerybeat-schedule" \
    --hostname "demo-$$@%h" >"$ROOT/.data/logs/worker.log" 2>&1 &
worker_pid=$!

log "Ingesting the sample PDFs through the worker"
"${MANAGE[@]}" ingest "$ROOT/.data/samples" --wait --force

log "What is in the index"
"${MANAGE[@]}" documents_report

log "A search, with page citations"
"${MANAGE[@]}" search "what happens when a worker is killed during ingestion" -k 3

cat <<MSG

Done. The worker (and the database and Redis, if this script started them) stop as the script exits.
To browse the results in the admin:
    .venv/bin/python manage.py runserver
    open http://127.0.0.1:8000/admin/   (user and password: see above)
To ingest more, keep a worker running in another terminal:
    .venv/bin/celery -A fca_site worker -B --loglevel=INFO   # -B: the stuck-document sweep
    .venv/bin/python manage.py ingest PATH... --wait
    .venv/bin/python manage.py search "your question" -k 5
MSG
