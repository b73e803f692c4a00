"""docs/schema.md is generated from the COMMENTs of a freshly migrated database (scripts/gen_schema_doc.py), so it
cannot drift from what the database says."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parent.parent


def generator():
    spec = importlib.util.spec_from_file_location("gen_schema_doc", REPO / "scripts" / "gen_schema_doc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_schema_md_is_what_the_comments_generate(db):
    with psycopg.connect(db) as conn:
        generated = generator().render(conn)
    committed = (REPO / "docs" / "schema.md").read_text(encoding="utf-8")
    assert committed == generated, "docs/schema.md is out of date: run .venv/bin/python scripts/gen_schema_doc.py"


def test_the_document_lists_every_view_and_column(db):
    with psycopg.connect(db) as conn:
        generated = generator().render(conn)
        columns = conn.execute(
            """SELECT c.relname, a.attname FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
                WHERE c.relnamespace = 'deribit'::regnamespace AND c.relkind = 'v' AND a.attnum > 0"""
        ).fetchall()
    assert len(columns) > 200
    sections = {part.split("\n", 1)[0]: part for part in generated.split("### deribit.")[1:]}
    for view, column in columns:
        assert f"| `{column}` |" in sections[view], (view, column)
