"""Initial schema: the vector extension, documents and their embedded chunks."""

import django.db.models.deletion
import pgvector.django.indexes
import pgvector.django.vector
from django.conf import settings
from django.db import migrations, models
from pgvector.django import VectorExtension

import documents.storage


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        # pgvector must exist before the first vector column.
        VectorExtension(),
        migrations.CreateModel(
            name="Document",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "title",
                    models.CharField(
                        help_text="Shown in lists and search results; from the file name.",
                        max_length=255,
                        verbose_name="title",
                    ),
                ),
                (
                    "file",
                    models.FileField(
                        help_text="The stored PDF, named by its SHA-256 (never by the uploaded name).",
                        max_length=255,
                        upload_to=documents.storage.document_upload_path,
                        verbose_name="file",
                    ),
                ),
                (
                    "sha256",
                    models.CharField(
                        help_text="Hash of the file's bytes: the same bytes are one document.",
                        max_length=64,
                        unique=True,
                        verbose_name="SHA-256",
                    ),
                ),
                (
                    "size_bytes",
                    models.BigIntegerField(
                        help_text="Size of the stored file.", verbose_name="size (bytes)"
                    ),
                ),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("queued", "Queued"),
                            ("processing", "Processing"),
                            ("ready", "Ready"),
                            ("failed", "Failed"),
                        ],
                        default="queued",
                        help_text="Ingestion state; see the transitions in the model's docstring.",
                        max_length=16,
                        verbose_name="status",
                    ),
                ),
                (
                    "page_count",
                    models.IntegerField(
                        blank=True,
                        help_text="Pages in the PDF, once it has been read.",
                        null=True,
                        verbose_name="pages",
                    ),
                ),
                (
                    "chunk_count",
                    models.IntegerField(
                        default=0,
                        help_text="Chunks in the current (searchable) set.",
                        verbose_name="chunks",
                    ),
                ),
                (
                    "error_code",
                    models.CharField(
                        blank=True,
                        help_text="Machine-readable reason of the last failure (not_pdf, encrypted, corrupt...).",
                        max_length=32,
                        verbose_name="error code",
                    ),
                ),
                (
                    "error_message",
                    models.TextField(
                        blank=True,
                        help_text="Readable reason of the last failure.",
                        verbose_name="error",
                    ),
                ),
                (
                    "embedder",
                    models.CharField(
                        blank=True,
                        help_text="Model that embedded the current chunks.",
                        max_length=200,
                        verbose_name="embedder",
                    ),
                ),
                (
                    "timings",
                    models.JSONField(
                        blank=True,
                        default=dict,
                        help_text="Seconds per stage of the last successful ingestion (parse, embed, write...).",
                        verbose_name="timings",
                    ),
                ),
                (
                    "last_task_id",
                    models.CharField(
                        blank=True,
                        help_text="Celery task id of the latest ingestion (its TaskResult).",
                        max_length=255,
                        verbose_name="last task id",
                    ),
                ),
                (
                    "created_at",
                    models.DateTimeField(
                        auto_now_add=True, help_text="Upload time.", verbose_name="created"
                    ),
                ),
                (
                    "updated_at",
                    models.DateTimeField(
                        auto_now=True, help_text="Last change.", verbose_name="updated"
                    ),
                ),
                (
                    "processing_started_at",
                    models.DateTimeField(
                        blank=True,
                        help_text="When a worker started the latest ingestion.",
                        null=True,
                        verbose_name="processing started",
                    ),
                ),
                (
                    "ingested_at",
                    models.DateTimeField(
                        blank=True,
                        help_text="When the current chunks were written.",
                        null=True,
                        verbose_name="ingested",
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at"],
                "indexes": [
                    models.Index(
                        fields=["status", "updated_at"], name="document_status_updated_idx"
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="Chunk",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "ordinal",
                    models.IntegerField(
                        help_text="Position in the document, from 0.", verbose_name="ordinal"
                    ),
                ),
                (
                    "page_start",
                    models.IntegerField(
                        help_text="Page where the text starts (1-based).", verbose_name="first page"
                    ),
                ),
                (
                    "page_end",
                    models.IntegerField(
                        help_text="Page where the text ends (1-based).", verbose_name="last page"
                    ),
                ),
                (
                    "text",
                    models.TextField(help_text="The chunk's normalised text.", verbose_name="text"),
                ),
                (
                    "token_count",
                    models.IntegerField(
                        help_text="Length in the embedder's tokens.", verbose_name="tokens"
                    ),
                ),
                (
                    "embedder",
                    models.CharField(
                        help_text="Model that made the embedding.",
                        max_length=200,
                        verbose_name="embedder",
                    ),
                ),
                (
                    "embedding",
                    pgvector.django.vector.VectorField(
                        dimensions=settings.RAG_EMBEDDING_DIMENSIONS,
                        help_text="Unit-length vector (cosine distance).",
                        verbose_name="embedding",
                    ),
                ),
                (
                    "document",
                    models.ForeignKey(
                        help_text="The document the text comes from.",
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="chunks",
                        to="documents.document",
                        verbose_name="document",
                    ),
                ),
            ],
            options={
                "ordering": ["document", "ordinal"],
                "indexes": [
                    pgvector.django.indexes.HnswIndex(
                        ef_construction=64,
                        fields=["embedding"],
                        m=16,
                        name="chunk_embedding_hnsw",
                        opclasses=["vector_cosine_ops"],
                    )
                ],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("document", "ordinal"), name="chunk_document_ordinal_unique"
                    )
                ],
            },
        ),
    ]
