"""Every SQL file of the product parses with sqlglot's PostgreSQL dialect, statement by statement."""

import pytest
import sqlglot
from sqlglot.errors import ParseError

from deribit_ts.db.migrate import split_statements
from deribit_ts.resources import migrations_dir, sql_dir

SQL_FILES = sorted([*migrations_dir().glob("*.sql"), *sql_dir().glob("*.sql")])


def test_there_is_sql_to_check():
    assert len(SQL_FILES) >= 5


@pytest.mark.parametrize("path", SQL_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_sql_file_parses(path):
    text = path.read_text()
    try:
        parsed = sqlglot.parse(text, read="postgres")
    except ParseError as exc:  # pragma: no cover - the assertion message is the point
        pytest.fail(f"{path.name} does not parse: {exc}")
    statements = split_statements(text)
    assert len([p for p in parsed if p is not None]) == len(statements)
    for statement in statements:
        sqlglot.parse_one(statement, read="postgres")


def test_split_statements_respects_quotes_comments_and_dollar_bodies():
    text = """
    -- a comment; with a semicolon
    SELECT 'a;b', "we;ird";
    /* block; comment */ CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$
    BEGIN RETURN 1; END; $body$;
    SELECT $$x;y$$;
    SELECT 'it''s; fine'
    """
    statements = split_statements(text)
    assert len(statements) == 4
    assert statements[1].startswith("/* block; comment */ CREATE FUNCTION")
    assert statements[1].endswith("$body$;")
    assert statements[3] == "SELECT 'it''s; fine'"


def test_comment_only_text_has_no_statements():
    assert split_statements("-- nothing\n/* here */\n;\n") == []
