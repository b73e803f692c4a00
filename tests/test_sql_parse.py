"""Every SQL file of the product parses with sqlglot's PostgreSQL dialect, statement by statement.

sqlglot reads syntax it does not know as an opaque `Command` (and would accept `CREATE TABLBE x`), so a
statement that comes back as a Command fails unless it is one of the TimescaleDB / PL forms below, whose SQL
parts are then parsed on their own: a continuous aggregate's query, a procedure call's arguments, a SQL
function's body; or role and ownership DDL, matched word by word against PostgreSQL's grammar for it. The
statements themselves run for real in the Apache tier and the `tsl` tier.
"""

import re

import pytest
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from deribit_ts.db import queries as named
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
        check_statement(statement)


CONTINUOUS_AGGREGATE = re.compile(
    r"CREATE MATERIALIZED VIEW\s+[\w.]+\s+WITH\s*\((?:[^()]|\([^()]*\))*timescaledb\.continuous[^)]*\)\s+AS\s+"
    r"(?P<query>.*?)(?:\s+WITH\s+(?:NO\s+)?DATA)?\s*;?\s*$",
    re.S | re.I,
)
PROCEDURE_CALL = re.compile(r"CALL\s+(?P<call>[\w.]+\s*\(.*\))\s*;?\s*$", re.S | re.I)
SQL_FUNCTION = re.compile(
    r"CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+[\w.]+\s*\(.*?\)\s+RETURNS\s+.*?LANGUAGE\s+sql\s+AS\s+"
    r"(?P<tag>\$\w*\$)(?P<body>.*)(?P=tag)\s*;?\s*$",
    re.S | re.I,
)
# sqlglot does not know `RETURNS trigger`; the body is PL/pgSQL (which no other function's check parses either).
TRIGGER_FUNCTION = re.compile(
    r"CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+[\w.]+\s*\(\)\s+RETURNS\s+trigger\s+LANGUAGE\s+plpgsql\s+AS\s+"
    r"(?P<tag>\$\w*\$).*(?P=tag)\s*;?\s*$",
    re.S | re.I,
)
CREATE_EXTENSION = re.compile(
    r"CREATE EXTENSION (?:IF NOT EXISTS )?\w+(?: (?:WITH )?SCHEMA \w+)?(?: VERSION \w+)?(?: CASCADE)?\s*;?\s*$", re.I
)

# Role and ownership DDL (sqlglot reads little of it): role attributes, database and object owners, grants and
# default privileges, in the words PostgreSQL has for them. In a named query, `{kind}`, `{privilege}` and
# `{objects}` are composed in from a fixed list (db/owner.py): the check reads them as those words.
_PRIVILEGE = r"(?:SELECT|INSERT|UPDATE|DELETE|TRUNCATE|REFERENCES|TRIGGER|USAGE|EXECUTE|CONNECT|CREATE|privilege)"
_PRIVILEGES = rf"{_PRIVILEGE}(?:\s*,\s*{_PRIVILEGE})*"
_OBJECTS = r"(?:TABLES|FUNCTIONS|ROUTINES|SEQUENCES|TYPES|objects)"
_KIND = r"(?:TABLE|FOREIGN TABLE|VIEW|MATERIALIZED VIEW|SEQUENCE|SCHEMA|TYPE|DOMAIN|FUNCTION|ROUTINE|AGGREGATE|kind)"
_ATTRIBUTE = r"(?:NO)?(?:LOGIN|SUPERUSER|CREATEDB|CREATEROLE|REPLICATION|BYPASSRLS|INHERIT)|PASSWORD \S+"
ROLE_DDL = [
    re.compile(rf"^{form}\s*;?\s*$".replace(" ", r"\s+"), re.I)
    for form in (
        rf"(?:CREATE|ALTER) ROLE \w+(?: (?:{_ATTRIBUTE}))*",
        r"CREATE DATABASE \w+ OWNER \w+",
        r"ALTER DATABASE \w+ OWNER TO \w+",
        rf"ALTER {_KIND} \S+ OWNER TO \w+",
        rf"GRANT {_PRIVILEGES} ON (?:DATABASE \w+|SCHEMA \w+|ALL {_OBJECTS} IN SCHEMA \w+) TO \w+",
        rf"ALTER DEFAULT PRIVILEGES FOR ROLE \w+ IN SCHEMA \w+ GRANT {_PRIVILEGES} ON {_OBJECTS} TO \w+",
    )
]


def without_comments(statement: str) -> str:
    return re.sub(r"--[^\n]*", "", statement).strip()


def check_statement(statement: str) -> None:
    """Parse one statement; a Command is accepted only in the known forms, with their SQL parts parsed."""
    tree = sqlglot.parse_one(statement, read="postgres")
    if not isinstance(tree, exp.Command):
        return
    text = without_comments(statement)
    if match := CONTINUOUS_AGGREGATE.match(text):
        assert isinstance(sqlglot.parse_one(match["query"], read="postgres"), exp.Query)
    elif match := PROCEDURE_CALL.match(text):
        assert isinstance(sqlglot.parse_one(f"SELECT {match['call']}", read="postgres"), exp.Select)
    elif match := SQL_FUNCTION.match(text):
        body = split_statements(match["body"])
        assert body, "empty function body"
        for inner in body:
            check_statement(inner)
    elif not (
        CREATE_EXTENSION.match(text) or TRIGGER_FUNCTION.match(text) or any(form.match(text) for form in ROLE_DDL)
    ):
        pytest.fail(f"sqlglot cannot read this statement (a typo, or a form the test does not know): {text[:120]}")


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLBE x (a int)",
        "CREATE VIEW v AS SELEC 1",
        "CALL whatever(",
        "CREATE MATERIALIZED VIEW v WITH (timescaledb.continuous) AS SELEC 1 WITH NO DATA",
        "CREATE FUNCTION f() RETURNS SETOF int LANGUAGE sql AS $$ SELEC 1 $$",
        "CREATE ROLE r LOGIN NOSUPERUSR",
        "ALTER TABLBE deribit.x OWNER TO r",
        "GRANT SELECT ON ALL TABLE IN SCHEMA deribit TO r",
        "ALTER DEFAULT PRIVILEGES FOR ROLE o IN SCHEMA deribit GRANT SELECT ONN TABLES TO r",
    ],
)
def test_a_typo_fails_the_check(statement):
    with pytest.raises((ParseError, pytest.fail.Exception, AssertionError)):
        check_statement(statement)


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


# --- named queries (sql/queries/*.sql, loaded by deribit_ts.db.queries) -------------------------------------

QUERY_FILES = sorted(named.queries_dir().glob("*.sql"))
NAMED_QUERIES = [(path.stem, name) for path in QUERY_FILES for name in named.load(path.stem)]


@pytest.mark.parametrize(("group", "name"), NAMED_QUERIES, ids=lambda v: v)
def test_named_query_parses(group, name):
    """Each query is one statement sqlglot reads (as the SQL files' statements are checked). Its {placeholders}
    (identifiers composed with psycopg.sql) are read as plain names for the check; `({query})` as a subquery."""
    text = named.query(group, name).replace("({query})", "(SELECT 1)")  # a whole SELECT, composed in
    text = re.sub(r"(?<!\{)\{(\w+)\}(?!\})", r"\1", text)
    parsed = [p for p in sqlglot.parse(text, read="postgres") if p is not None]
    assert len(parsed) == 1, f"{group}.{name}: {len(parsed)} statements"
    check_statement(text)  # a query, DML or a procedure call with parsed arguments: never an opaque Command


def test_there_are_named_queries():
    assert ("report", "gaps") in NAMED_QUERIES


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("SELECT 1;\n-- name: a\nSELECT 2", "before the first"),
        ("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2", "defined twice"),
        ("-- name: a\n-- nothing here\n", "is empty"),
    ],
)
def test_a_malformed_query_file_is_refused(text, error):
    with pytest.raises(ValueError, match=error):
        named.parse(text)


def test_queries_are_split_by_name_and_lose_their_semicolon():
    text = "-- header\n-- name: one\n-- what it is\nSELECT 1;\n\n-- name: two\nSELECT {x} FROM t;\n"
    assert named.parse(text) == {"one": "SELECT 1", "two": "SELECT {x} FROM t"}
