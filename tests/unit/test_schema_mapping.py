"""The SQLAlchemy mapping in rag.store matches the schema Django's migrations create."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import connection
from pgvector.sqlalchemy import Vector
from sqlalchemy import BigInteger, Boolean, DateTime, Float, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR

from rag.store import Base, ChunkRow

pytestmark = pytest.mark.django_db


def columns_of(table: str) -> dict[str, dict]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_name, data_type, udt_name, character_maximum_length, is_nullable "
            "FROM information_schema.columns WHERE table_name = %s",
            [table],
        )
        return {
            name: {"data_type": dt, "udt": udt, "length": length, "nullable": nullable == "YES"}
            for name, dt, udt, length, nullable in cursor.fetchall()
        }


def expected_type(column) -> tuple[str, int | None]:
    kind = column.type
    if isinstance(kind, Vector):
        return "vector", None
    if isinstance(kind, TSVECTOR):
        return "tsvector", None
    if isinstance(kind, JSONB):
        return "jsonb", None
    if isinstance(kind, Boolean):
        return "boolean", None
    if isinstance(kind, Float):
        return "double precision", None
    if isinstance(kind, BigInteger):
        return "bigint", None
    if isinstance(kind, Integer):
        return "integer", None
    if isinstance(kind, String) and not isinstance(kind, Text):
        return "character varying", kind.length
    if isinstance(kind, Text):
        return "text", None
    if isinstance(kind, DateTime):
        return "timestamp with time zone" if kind.timezone else "timestamp", None
    raise AssertionError(f"unmapped type {kind!r}")


@pytest.mark.parametrize("table", sorted(Base.metadata.tables))
def test_every_mapped_column_exists_with_the_same_type_and_nullability(table):
    actual = columns_of(table)
    assert actual, f"{table} does not exist in the migrated database"
    for column in Base.metadata.tables[table].columns:
        assert column.name in actual, f"{table}.{column.name} is mapped but not migrated"
        db = actual[column.name]
        type_name, length = expected_type(column)
        got = db["udt"] if type_name in ("vector", "tsvector") else db["data_type"]
        assert got == type_name, f"{table}.{column.name}: mapped {type_name}, database {got}"
        if length is not None:
            assert db["length"] == length, f"{table}.{column.name} length"
        if not column.primary_key:
            assert db["nullable"] == column.nullable, f"{table}.{column.name} nullability"


def test_every_required_chunk_column_is_mapped_so_inserts_cannot_miss_one():
    mapped = {c.name for c in ChunkRow.__table__.columns}
    required = {
        name for name, info in columns_of("documents_chunk").items() if not info["nullable"]
    }
    assert required <= mapped


def test_vector_column_has_the_configured_dimension_and_an_hnsw_cosine_index():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT atttypmod FROM pg_attribute "
            "WHERE attrelid = 'documents_chunk'::regclass AND attname = 'embedding'"
        )
        assert cursor.fetchone()[0] == settings.RAG_EMBEDDING_DIMENSIONS
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'documents_chunk'")
        definitions = [row[0] for row in cursor.fetchall()]
    assert any("USING hnsw" in d and "vector_cosine_ops" in d for d in definitions), definitions


def test_foreign_key_from_chunk_to_document_matches():
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "documents_chunk")
    foreign = [c for c in constraints.values() if c["foreign_key"]]
    assert [(c["columns"], c["foreign_key"]) for c in foreign] == [
        (["document_id"], ("documents_document", "id"))
    ]
    (mapped_fk,) = ChunkRow.__table__.c.document_id.foreign_keys
    assert mapped_fk.target_fullname == "documents_document.id"


def test_the_generated_search_column_uses_the_same_text_search_configuration():
    from documents.models import TEXT_SEARCH_CONFIG
    from rag.store import TEXT_SEARCH_CONFIG as RAG_TEXT_SEARCH_CONFIG

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT generation_expression FROM information_schema.columns "
            "WHERE table_name = 'documents_chunk' AND column_name = 'search_vector'"
        )
        (expression,) = cursor.fetchone()
    assert TEXT_SEARCH_CONFIG == RAG_TEXT_SEARCH_CONFIG
    assert f"'{TEXT_SEARCH_CONFIG}'::regconfig" in expression
    assert ChunkRow.__table__.c.search_vector.computed is not None
