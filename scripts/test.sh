#!/usr/bin/env bash
# Run every check and the whole test suite (unit, integration with real Celery workers, Redis
# and the embedded PostgreSQL, and browser tests in Chromium against the live development
# server). Leaves no process of its own running: the embedded database and Redis are stopped
# afterwards when this run started them.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

# Stop the embedded database afterwards only if this run started it.
started_db=0
cleanup() {
    if [ "$started_db" = 1 ]; then
        "$PY" -m fca_site.embedded_db stop >/dev/null 2>&1 || true
    fi
    stop_own_redis
}
# Set before setup_all, which may start Redis: a step that fails after it still stops that Redis.
trap cleanup EXIT
setup_all
ensure_chromium

if [ -z "${DATABASE_URL:-}" ] && ! "$PY" -m fca_site.embedded_db status >/dev/null 2>&1; then
    started_db=1
fi

log "ruff"
"$VENV/bin/ruff" check .
log "import contracts"
"$VENV/bin/lint-imports" --no-cache
log "pytest"
"$PY" -m pytest "$@"
