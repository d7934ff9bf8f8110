#!/usr/bin/env bash
# Prepare the checkout: .venv/ with every pinned package, a reachable Redis broker, Debian's
# Tesseract language models for OCR, and Debian's Chromium for the browser tests.
# Idempotent: reinstalls only when requirements.txt changed. Sourced by demo.sh and test.sh,
# or run on its own.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
log() { printf '==> %s\n' "$*" >&2; }

find_python() {
    for candidate in python3.11 python3 python; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    echo "Python 3.11 or newer is required." >&2
    return 1
}

ensure_venv() {
    if [ ! -x "$PY" ]; then
        log "Creating virtualenv in .venv/"
        "$(find_python)" -m venv "$VENV"
    fi
    local stamp="$VENV/.requirements.sha256"
    local want
    want="$(sha256sum "$ROOT/requirements.txt" | cut -d' ' -f1)"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        log "Installing requirements (first run takes a few minutes)"
        local extra=()
        # This machine kind keeps the CPU build of torch in /opt/wheels.
        [ -d /opt/wheels ] && extra+=(--find-links /opt/wheels)
        # (This machine's pip configuration names local indexes that may be absent; pip warns
        # about each missing one, which says nothing about the install.)
        "$PY" -m pip install --quiet --disable-pip-version-check "${extra[@]}" \
            -r "$ROOT/requirements.txt" 2> >(grep -v "^WARNING: Location 'file:" >&2)
        echo "$want" >"$stamp"
    fi
}

# The browser tests drive Debian's Chromium through Playwright; Playwright never downloads one.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
CHROMIUM="${FCA_CHROMIUM:-/usr/bin/chromium}"

ensure_chromium() {
    [ -x "$CHROMIUM" ] && return 0
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        log "Chromium not found at $CHROMIUM: the browser tests will be skipped (install Debian's chromium)"
        return 0
    fi
    log "Installing Chromium (Debian package) for the browser tests"
    local install=(apt-get install -y --no-install-recommends chromium)
    # The package lists may be missing or stale on a fresh machine: refresh them only then.
    if ! DEBIAN_FRONTEND=noninteractive "${install[@]}" >/dev/null; then
        apt-get update >/dev/null
        DEBIAN_FRONTEND=noninteractive "${install[@]}" >/dev/null
    fi
}

# OCR: tesserocr (in requirements.txt) brings libtesseract; Debian brings the language models
# (tesseract-ocr-eng, in /usr/share/tesseract-ocr/5/tessdata).
TESSDATA_ENG="/usr/share/tesseract-ocr/5/tessdata/eng.traineddata"

ensure_tesseract() {
    [ -f "$TESSDATA_ENG" ] && return 0
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        log "Tesseract's English model not found ($TESSDATA_ENG): install Debian's tesseract-ocr-eng; OCR is off until then (RAG_OCR=off)"
        export RAG_OCR="${RAG_OCR:-off}"
        return 0
    fi
    log "Installing Tesseract (Debian packages) for OCR"
    local install=(apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-eng)
    if ! DEBIAN_FRONTEND=noninteractive "${install[@]}" >/dev/null; then
        apt-get update >/dev/null
        DEBIAN_FRONTEND=noninteractive "${install[@]}" >/dev/null
    fi
}

# Set by ensure_redis when it started Redis itself: its port and process id (stop_own_redis).
STARTED_REDIS_PORT=""
STARTED_REDIS_PID=""

ensure_redis() {
    local url="${CELERY_BROKER_URL:-redis://localhost:6379/0}"
    if "$PY" - "$url" <<'PY' 2>/dev/null; then
import sys, redis
redis.Redis.from_url(sys.argv[1], socket_connect_timeout=2).ping()
PY
        return 0
    fi
    case "$url" in
        redis://localhost* | redis://127.0.0.1*)
            # Nothing answers on the URL's port, so the server that answers after this is ours.
            local port
            port="$("$PY" -c 'import sys, urllib.parse; print(urllib.parse.urlsplit(sys.argv[1]).port or 6379)' "$url")"
            if command -v redis-server >/dev/null 2>&1; then
                log "Starting Redis on 127.0.0.1:$port"
                redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no >/dev/null
                for _ in $(seq 1 50); do
                    if redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1; then
                        STARTED_REDIS_PORT="$port"
                        STARTED_REDIS_PID="$(redis-cli -h 127.0.0.1 -p "$port" info server | tr -d '\r' | sed -n 's/^process_id://p')"
                        return 0
                    fi
                    sleep 0.1
                done
            fi
            ;;
    esac
    echo "Redis is not reachable at $url. Start it, or set CELERY_BROKER_URL." >&2
    return 1
}

# Stop the Redis that ensure_redis started (if it did, and it is still that same process).
stop_own_redis() {
    [ -n "$STARTED_REDIS_PORT" ] || return 0
    local pid
    pid="$(redis-cli -h 127.0.0.1 -p "$STARTED_REDIS_PORT" info server 2>/dev/null | tr -d '\r' | sed -n 's/^process_id://p')"
    if [ -n "$pid" ] && [ "$pid" = "$STARTED_REDIS_PID" ]; then
        redis-cli -h 127.0.0.1 -p "$STARTED_REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    fi
}

setup_all() {
    cd "$ROOT"
    ensure_venv
    ensure_tesseract
    ensure_redis
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    setup_all
    ensure_chromium
    log "Ready: $PY"
fi
