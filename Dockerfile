# One image for both the web process and the Celery worker (docker-compose.yml picks the command).
FROM python:3.11-slim

# Runtime state lives under /data (uploads in /data/media, a volume shared with the workers);
# collected static files stay in the image.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FCA_DATA_DIR=/data \
    DJANGO_MEDIA_ROOT=/data/media \
    DJANGO_STATIC_ROOT=/app/staticfiles

WORKDIR /app

# OCR: Tesseract's English model (libtesseract itself comes in the tesserocr wheel). More
# languages: add tesseract-ocr-<lang> here and set RAG_OCR_LANGUAGES.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-eng \
    && rm -rf /var/lib/apt/lists/*

# torch first, from the CPU-only index: the default wheel pulls in gigabytes of CUDA libraries
# that a CPU-only image never uses. requirements.txt pins the same version, so the next step
# keeps this build instead of replacing it. Its own layer keeps it cached when requirements change.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .

# Settings refuse to load without a strong secret key once DATABASE_URL is set, and they only
# parse DATABASE_URL (no connection at import), so throwaway values suffice: a random key made
# for this command only, never kept in the image.
RUN DJANGO_SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(50))')" \
    DATABASE_URL=postgresql://build@localhost/build \
    python manage.py collectstatic --noinput

# Run unprivileged. The code and static files stay owned by root (read-only to the app); only
# /data/media is writable. Creating it here with this owner matters: an empty named volume is
# initialised from the image's directory, ownership included, so uploads work without a chown.
RUN useradd --create-home --uid 10001 app \
    && mkdir -p /data/media \
    && chown -R app:app /data
USER app

EXPOSE 8000

# gunicorn.conf.py: bind 0.0.0.0:8000, WEB_CONCURRENCY workers (3), header limits.
CMD ["gunicorn", "-c", "gunicorn.conf.py", "--worker-class", "asgi", "fca_site.asgi:application"]
