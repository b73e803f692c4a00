"""Guards on the shape of the tree: the package's layering and the numbering of new migrations.

The layers, top to bottom: cli -> collect -> ingest -> db / exchange, with report beside collect and the
simulator a leaf (only the CLI starts it; it knows nothing of the rest). An import that crosses a layer the
wrong way, even one inside a function, fails here with the line that does it.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from deribit_ts.resources import migrations_dir

PACKAGE = Path(__file__).resolve().parent.parent / "deribit_ts"
MANIFEST = Path(__file__).parent / "data" / "released_migrations.sha256"

# Subpackage (or module) -> the parts of deribit_ts it must never import.
FORBIDDEN = {
    "deribit_ts.sim": {
        "deribit_ts.cli",
        "deribit_ts.collect",
        "deribit_ts.ingest",
        "deribit_ts.db",
        "deribit_ts.exchange",
        "deribit_ts.report",
    },
    "deribit_ts.exchange": {
        "deribit_ts.cli",
        "deribit_ts.collect",
        "deribit_ts.ingest",
        "deribit_ts.db",
        "deribit_ts.report",
        "deribit_ts.sim",
    },
    "deribit_ts.db": {
        "deribit_ts.cli",
        "deribit_ts.collect",
        "deribit_ts.ingest",
        "deribit_ts.exchange",
        "deribit_ts.report",
        "deribit_ts.sim",
    },
    "deribit_ts.ingest": {"deribit_ts.cli", "deribit_ts.collect", "deribit_ts.report", "deribit_ts.sim"},
    "deribit_ts.collect": {"deribit_ts.cli", "deribit_ts.report", "deribit_ts.sim"},
    "deribit_ts.report": {"deribit_ts.cli", "deribit_ts.collect", "deribit_ts.sim"},
}
# The modules every layer may use must not reach up into the layers.
for _base in ("deribit_ts.config", "deribit_ts.errors", "deribit_ts.timeutil", "deribit_ts.validate"):
    FORBIDDEN[_base] = {
        "deribit_ts.cli",
        "deribit_ts.collect",
        "deribit_ts.ingest",
        "deribit_ts.db",
        "deribit_ts.exchange",
        "deribit_ts.report",
        "deribit_ts.sim",
    }


def _module_name(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, package: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import in the file, top-level or inside a function."""
    module = _module_name(path, package)
    parent = (module if path.name == "__init__.py" else module.rpartition(".")[0]).split(".")
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(parent[: len(parent) - node.level + 1] + [node.module or ""]).rstrip(".")
            target = base if node.level else node.module or ""
            # `from deribit_ts import cli` imports deribit_ts.cli: the names count too.
            found += [(node.lineno, target)] + [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
    return found


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def layering_violations(package: Path) -> list[str]:
    violations = []
    for path in sorted(package.rglob("*.py")):
        module = _module_name(path, package)
        forbidden = set().union(*(banned for owner, banned in FORBIDDEN.items() if _within(module, owner)))
        for line, target in _imports(path, package):
            if any(_within(target, banned) for banned in forbidden):
                violations.append(f"{path.relative_to(package.parent)}:{line} imports {target}")
    return sorted(set(violations))


def test_the_layers_import_only_downwards():
    violations = layering_violations(PACKAGE)
    assert not violations, "imports against the layering (see this module's docstring):\n" + "\n".join(violations)


def test_only_the_cli_starts_the_simulator():
    users = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path, PACKAGE)
        if _within(module, "deribit_ts.sim") or _within(module, "deribit_ts.cli"):
            continue
        imports = _imports(path, PACKAGE)
        users += [f"{module}:{line}" for line, target in imports if _within(target, "deribit_ts.sim")]
    assert not users, f"the simulator is a leaf that only the CLI starts; imported by: {users}"


# The commands that never call the exchange: their modules must not load ccxt (every exchange it supports) or
# aiohttp, ~1 s of CPU on each start. Import them where they are used. (`sim` serves with aiohttp: only `sim serve`
# may load it, not `sim --help`.)
NO_EXCHANGE_COMMANDS = ("db", "sim", "status", "coverage", "runs", "report", "export", "refresh", "backup")

_PROBE = """
import importlib, json, sys
loaded = {}
for name in sys.argv[1:]:
    importlib.import_module(name)
    loaded[name] = sorted(m for m in ("ccxt", "aiohttp") if m in sys.modules)
sys.argv = ["deribit-ts", "config"]
from deribit_ts.cli import main
try:
    main()
except SystemExit:
    pass
loaded["deribit-ts config"] = sorted(m for m in ("ccxt", "aiohttp") if m in sys.modules)
print(json.dumps(loaded))
"""


def test_commands_that_never_call_the_exchange_start_without_ccxt(tmp_path):
    """In a fresh interpreter (this one has ccxt loaded already), each module in turn, then `deribit-ts config`."""
    modules = [f"deribit_ts.cli.{name}" for name in NO_EXCHANGE_COMMANDS]
    env = {**os.environ, "DERIBIT_TS_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, *modules], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.splitlines()[-1])
    heavy = {name: found for name, found in loaded.items() if found}
    assert not heavy, f"loaded at import (import them where they are used): {heavy}"


@pytest.mark.parametrize(
    ("source", "reported"),
    [
        ("from deribit_ts.cli import main\n", "deribit_ts.cli"),
        ("def f():\n    from deribit_ts import sim\n", "deribit_ts.sim"),
        ("from ..collect import jobs\n", "deribit_ts.collect"),
        ("from . import load\nimport deribit_ts.report.text\n", "deribit_ts.report.text"),
    ],
)
def test_the_scan_sees_every_form_of_import(tmp_path, source, reported):
    """The guard itself: absolute, lazy and relative imports are all found (a scan that missed one would pass
    whatever the code did)."""
    package = tmp_path / "deribit_ts"
    (package / "ingest").mkdir(parents=True)
    (package / "ingest" / "x.py").write_text(source)
    assert [v for v in layering_violations(package) if v.endswith(f"imports {reported}")]


def _version(name: str) -> int:
    match = re.match(r"(\d{4})_", name)
    assert match, f"migration {name} is not named NNNN_description.sql"
    return int(match.group(1))


def test_new_migrations_are_numbered_above_every_released_one():
    """The runner applies pending migrations in number order, filling gaps: a new migration numbered below one
    that users have already applied would run after it on their databases and before it on new ones, two
    different histories. So a migration not (yet) in the released manifest takes a number above all of them."""
    released = [line.split()[1] for line in MANIFEST.read_text().splitlines() if line.strip()]
    highest = max(_version(name) for name in released)
    new = sorted(p.name for p in migrations_dir().glob("*.sql") if p.name not in released)
    below = [name for name in new if _version(name) <= highest]
    assert not below, f"new migrations numbered at or below the highest released one ({highest:04d}): {below}"


def test_migration_numbers_are_unique():
    versions = [_version(p.name) for p in migrations_dir().glob("*.sql")]
    assert len(versions) == len(set(versions)), sorted(v for v in versions if versions.count(v) > 1)


# --- SQL run from Python: named queries only ----------------------------------------------------------------

RUNS_SQL = {"execute", "executemany", "copy", "stream"}  # psycopg's connection and cursor methods that take SQL
SQL_VERB = re.compile(
    r"^\s*(?:SELECT|INSERT|UPDATE|DELETE|MERGE|WITH|VALUES|TABLE|CREATE|ALTER|DROP|TRUNCATE|GRANT|REVOKE|COMMENT|"
    r"SET|RESET|SHOW|COPY|CALL|DO|LOCK|VACUUM|ANALYZE|CLUSTER|REINDEX|REFRESH|LISTEN|NOTIFY|BEGIN|COMMIT|ROLLBACK|"
    r"SAVEPOINT|RELEASE|PREPARE|EXECUTE|EXPLAIN|DISCARD)\b",
    re.I,
)


def _text_of(node: ast.expr) -> str | None:
    """The SQL written in place by an expression, or None: a string or f-string, literal pieces joined by + or
    %, "...".format(...), or psycopg's sql.SQL("...") (with .format, .join or + after it)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    if isinstance(node, ast.BinOp):
        return _text_of(node.left) or _text_of(node.right)
    if isinstance(node, ast.Call):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
        if name == "SQL" and node.args:
            return _text_of(node.args[0])
        if name in ("format", "join") and isinstance(func, ast.Attribute):
            return _text_of(func.value)
    return None


def inline_sql(package: Path) -> list[str]:
    """Where a module under `package` runs SQL it writes itself instead of a named query (sql/queries/*.sql via
    deribit_ts.db.queries): SQL text passed to execute()/executemany()/copy()/stream(), directly or through a
    module constant, and statements built with sql.SQL("...") anywhere (the module-constant shape). sql.SQL
    fragments that are no statement (", ", "{} AND {}") compose identifiers and stay."""
    found = []
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        constants = {
            target.id: node.value
            for node in tree.body
            if isinstance(node, ast.Assign)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        where = path.relative_to(package.parent)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            if node.func.attr in RUNS_SQL:
                given = node.args[:1] + [k.value for k in node.keywords if k.arg == "query"]
                for arg in given:
                    text = _text_of(constants.get(arg.id, arg) if isinstance(arg, ast.Name) else arg)
                    if text is not None:
                        found.append(f"{where}:{node.lineno} {node.func.attr}({text.strip()[:60]!r})")
            elif node.func.attr == "SQL" and node.args and SQL_VERB.match(_text_of(node.args[0]) or ""):
                found.append(f"{where}:{node.lineno} sql.SQL({(_text_of(node.args[0]) or '').strip()[:60]!r})")
    return sorted(set(found))


def test_sql_run_from_python_is_named_queries():
    """SQL has one home: sql/queries/<module>.sql, loaded by deribit_ts.db.queries.query()/compose() and parsed
    by tests/test_sql_parse.py. Values go as %(name)s parameters, identifiers through compose()."""
    found = inline_sql(PACKAGE)
    assert not found, "SQL written in Python; make it a named query in sql/queries/:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "source",
    [
        'def f(conn):\n    conn.execute("SELECT 1")\n',
        'async def f(conn, x):\n    await conn.execute(f"SELECT {x}")\n',
        'def f(cur, rows):\n    cur.executemany("INSERT INTO t VALUES (%s)", rows)\n',
        'def f(cur):\n    with cur.copy("COPY t FROM STDIN") as c:\n        pass\n',
        'Q = "DELETE FROM t"\ndef f(conn):\n    conn.execute(Q)\n',
        'from psycopg import sql\ndef f(conn, t):\n    conn.execute(sql.SQL("TRUNCATE {}").format(t))\n',
        'from psycopg import sql\nDDL = sql.SQL("CREATE ROLE {role}")\n',
        'def f(conn, x):\n    conn.execute("SELECT " + x)\n',
        'def f(conn):\n    conn.execute(query="SELECT 1")\n',
    ],
)
def test_the_sql_scan_sees_every_shape(tmp_path, source):
    """The guard itself: each shape SQL written in Python takes is found."""
    package = tmp_path / "deribit_ts"
    package.mkdir()
    (package / "x.py").write_text(source)
    assert inline_sql(package)


def test_the_sql_scan_lets_named_queries_and_fragments_pass(tmp_path):
    package = tmp_path / "deribit_ts"
    package.mkdir()
    (package / "x.py").write_text(
        "from psycopg import sql\n"
        "from deribit_ts.db.queries import compose, query\n"
        "def f(conn, cols, rows):\n"
        '    conn.execute(query("report", "gaps"), {"since": None})\n'
        '    conn.execute(compose("load", "truncate", staging=sql.Identifier("s")))\n'
        '    cols = sql.SQL(", ").join(map(sql.Identifier, cols))\n'
        "    d = rows.copy()\n"
    )
    assert inline_sql(package) == []
