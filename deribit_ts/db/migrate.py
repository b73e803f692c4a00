"""Versioned, edition-aware schema migrations.

``migrations/NNNN_name.sql`` files run once each, in order, every one in a transaction together with its
ledger row in ``deribit_ts.schema_migrations``. ``sql/*.sql`` files hold repeatable objects (views,
functions) and are re-applied, all together and in one transaction, whenever one of them changed or a
migration ran.

Users build their own views, materialized views and grants on ``deribit.*``, so repeatable files replace
their objects in place (``CREATE OR REPLACE``: a view keeps its columns' names, order and types, new columns
are appended) and nothing ever drops with ``CASCADE``. A drop that other objects depend on is refused in one
line naming them, and the transaction leaves the database as it was.

Directives are comment lines at the top of a file:

    -- deribit-ts: edition=timescale    only where timescaledb.license = 'timescale' (Community/TSL)
    -- deribit-ts: edition=apache       only on the Apache edition (the fallback of a TSL file)
    -- deribit-ts: no-transaction       statements run one by one in autocommit (e.g. CREATE INDEX
                                        CONCURRENTLY, or a continuous aggregate created WITH DATA)

A migration skipped for the server's edition is recorded as ``skipped`` and is applied later if the
server's edition changes to the one it needs. An applied file whose content changed is refused.
Concurrent runs are serialized by a session advisory lock.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from deribit_ts.db.connect import ServerInfo, connect, server_info
from deribit_ts.db.queries import compose, query
from deribit_ts.errors import UserError
from deribit_ts.resources import migrations_dir, sql_dir

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same for every deribit-ts process.
ADVISORY_LOCK_KEY = 0x6465726962697473  # "deribits"

EDITIONS = ("apache", "timescale")
_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_DIRECTIVE = re.compile(r"^--\s*deribit-ts:\s*(.+?)\s*$")


@dataclass(frozen=True)
class SqlFile:
    name: str  # file name, e.g. 0003_market_data.sql
    version: int | None  # None for repeatable sql/ files
    text: str
    sha256: str
    edition: str | None  # None: every edition
    transactional: bool

    def runs_on(self, edition: str) -> bool:
        return self.edition is None or self.edition == edition


@dataclass(frozen=True)
class Step:
    action: str  # apply | skip | reapply
    file: SqlFile
    reason: str = ""

    def describe(self) -> str:
        what = {"apply": "apply", "skip": "skip (edition)", "reapply": "apply (repeatable)"}[self.action]
        return f"{what:20} {self.file.name}" + (f"  ({self.reason})" if self.reason else "")


def read_sql_file(path: Path, *, versioned: bool) -> SqlFile:
    text = path.read_text(encoding="utf-8")
    version = None
    if versioned:
        match = _MIGRATION_NAME.match(path.name)
        if not match:
            raise UserError(f"badly named migration {path.name}: expected NNNN_lowercase_name.sql")
        version = int(match.group(1))
    edition, transactional = None, True
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        directive = _DIRECTIVE.match(line)
        if not directive:
            continue
        value = directive.group(1)
        if value == "no-transaction":
            transactional = False
        elif value.startswith("edition="):
            edition = value.removeprefix("edition=")
            if edition not in EDITIONS:
                raise UserError(f"{path.name}: unknown edition {edition!r} (expected one of {', '.join(EDITIONS)})")
        else:
            raise UserError(f"{path.name}: unknown directive {value!r}")
    return SqlFile(
        name=path.name,
        version=version,
        text=text,
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        edition=edition,
        transactional=transactional,
    )


def load_migrations(directory: Path | None = None) -> list[SqlFile]:
    files = [read_sql_file(p, versioned=True) for p in sorted((directory or migrations_dir()).glob("*.sql"))]
    seen: dict[int, str] = {}
    for f in files:
        assert f.version is not None
        if f.version in seen:
            raise UserError(f"two migrations share version {f.version:04d}: {seen[f.version]} and {f.name}")
        seen[f.version] = f.name
    return files


def load_repeatables(directory: Path | None = None) -> list[SqlFile]:
    return [read_sql_file(p, versioned=False) for p in sorted((directory or sql_dir()).glob("*.sql"))]


def split_statements(text: str) -> list[str]:
    """Split SQL into statements on top-level semicolons.

    Knows enough of PostgreSQL's lexical rules for our files: quoted strings and identifiers,
    dollar-quoted bodies, line and block comments. Statements are sent one at a time so an error names
    the statement that failed, and no single protocol message grows large.
    """
    statements, start, i, n = [], 0, 0, len(text)
    while i < n:
        c = text[i]
        if c == "-" and text.startswith("--", i):
            i = text.find("\n", i)
            i = n if i < 0 else i + 1
        elif c == "/" and text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif c in ("'", '"'):
            i += 1
            while i < n:
                if text[i] == c:
                    if i + 1 < n and text[i + 1] == c:  # doubled quote inside the literal
                        i += 2
                        continue
                    break
                i += 1
            i += 1
        elif c == "$":
            tag = re.match(r"\$[A-Za-z_][A-Za-z0-9_]*\$|\$\$", text[i:])
            if tag:
                end = text.find(tag.group(0), i + len(tag.group(0)))
                i = n if end < 0 else end + len(tag.group(0))
            else:
                i += 1
        elif c == ";":
            statements.append(text[start : i + 1])
            start = i = i + 1
        else:
            i += 1
    statements.append(text[start:])
    return [s.strip() for s in statements if _has_code(s)]


def _has_code(statement: str) -> bool:
    without_comments = re.sub(r"--[^\n]*|/\*.*?\*/", "", statement, flags=re.S)
    return bool(without_comments.strip(" \t\r\n;"))


def edition_of(info: ServerInfo) -> str:
    return "timescale" if info.edition == "timescale" else "apache"


def create_ledger(conn: psycopg.Connection) -> None:
    """The ledger's schema and tables, where they are missing."""
    for part in ("ledger_schema", "ledger_migrations", "ledger_repeatables"):
        conn.execute(query("migrate", part))


def _ledger(conn: psycopg.Connection) -> tuple[dict[int, tuple[str, str, str]], dict[str, str]]:
    """Applied/skipped migrations {version: (name, sha256, status)} and repeatables {name: sha256}."""
    exists = conn.execute(query("migrate", "ledger_exists")).fetchone()
    if not exists or not exists[0]:
        return {}, {}
    migrations = {
        v: (name, sha, status) for v, name, sha, status in conn.execute(query("migrate", "applied_migrations"))
    }
    repeatables = dict(conn.execute(query("migrate", "applied_repeatables")).fetchall())
    return migrations, repeatables


def plan(conn: psycopg.Connection, edition: str, migrations: list[SqlFile], repeatables: list[SqlFile]) -> list[Step]:
    """What would run, in order. Raises UserError when the database and these files disagree."""
    applied, applied_repeatables = _ledger(conn)
    known = {f.version for f in migrations}
    newer = sorted(v for v in applied if v not in known and applied[v][2] == "applied")
    if newer and newer[-1] > max(known, default=0):
        raise UserError(
            f"the database has migration {newer[-1]:04d} ({applied[newer[-1]][0]}) that this deribit-ts does not "
            "know: upgrade deribit-ts before using this database"
        )
    steps: list[Step] = []
    for f in migrations:
        assert f.version is not None
        entry = applied.get(f.version)
        if entry and entry[2] == "applied":
            if entry[1] != f.sha256:
                raise UserError(
                    f"migration {f.name} was changed after it was applied to this database "
                    f"(sha256 {entry[1][:12]}... recorded, {f.sha256[:12]}... on disk): applied migrations are "
                    "immutable, restore the file and put the change in a new migration"
                )
            continue
        if f.runs_on(edition):
            steps.append(Step("apply", f, "previously skipped for the edition" if entry else ""))
        elif not entry:
            steps.append(Step("skip", f, f"needs the {f.edition} edition, server is {edition}"))
    changed = _changed_repeatables(edition, repeatables, applied_repeatables)
    if any(s.action == "apply" for s in steps) or changed:
        # Views may depend on one another and on migrated tables: re-create all of them, in order.
        steps += [
            Step("reapply", f, _repeatable_reason(f, applied_repeatables)) for f in repeatables if f.runs_on(edition)
        ]
    return steps


def _repeatable_reason(f: SqlFile, applied: dict[str, str]) -> str:
    """Why a repeatable file is applied: new to this database, changed since it was applied, or neither (it is
    re-created because migrations ran)."""
    if f.name not in applied:
        return "new"
    return "changed" if applied[f.name] != f.sha256 else "after migrations"


def _changed_repeatables(edition: str, repeatables: list[SqlFile], applied: dict[str, str]) -> list[SqlFile]:
    """The sql/ files for this edition whose content differs from what the database last applied."""
    return [f for f in repeatables if f.runs_on(edition) and applied.get(f.name) != f.sha256]


def _run_statements(conn: psycopg.Connection, f: SqlFile) -> None:
    for statement in split_statements(f.text):
        try:
            conn.execute(statement)
        except psycopg.errors.DependentObjectsStillExist as exc:
            raise UserError(_refusal(f, exc)) from None
        except psycopg.Error as exc:
            first_line = " ".join(str(exc).split("\n")[0].split())
            snippet = " ".join(statement.split())[:80]
            raise UserError(f"{f.name} failed: {first_line} (in: {snippet})") from None


def _refusal(f: SqlFile, exc: psycopg.errors.DependentObjectsStillExist) -> str:
    """One line for a drop that other objects (a user's views, say) depend on: what, which objects, what to do.
    PostgreSQL lists the dependents in the error's detail, one per line; its hint (CASCADE) is never the answer."""
    what = " ".join((exc.diag.message_primary or str(exc)).split())
    dependents = [" ".join(line.split()) for line in (exc.diag.message_detail or "").splitlines() if line.strip()]
    return _refused(f, f"has to drop an object others depend on ({what}: {_listed(dependents)})")


def _listed(names: list[str], shown: int = 10) -> str:
    return "; ".join(names[:shown]) + (f"; and {len(names) - shown} more" if len(names) > shown else "")


def _refused(f: SqlFile, why: str) -> str:
    left = "it was not applied" if f.version is not None else "no view or function was replaced"
    return (
        f"upgrade refused: {f.name} {why}, so {left}. Save the definitions of your objects named there and drop "
        "them, run `deribit-ts db migrate` again, then re-create them"
    )


@contextmanager
def _users_objects_kept(conn: psycopg.Connection, f: SqlFile) -> Iterator[None]:
    """Inside a file's transaction: refuse (and so roll back) the file when it dropped a user's object."""
    before = {name for (name,) in conn.execute(query("migrate", "user_objects"))}
    yield
    lost = sorted(before - {name for (name,) in conn.execute(query("migrate", "user_objects"))})
    if lost:
        raise UserError(_refused(f, f"would drop objects of yours built on deribit-ts' ({_listed(lost)})"))


def _restore_grants(conn: psycopg.Connection, before: list[tuple]) -> int:
    """Grant again what a re-created relation of schema deribit lost; returns the privileges restored."""
    now = {(name, grantee, privilege) for _, name, grantee, privilege, _ in conn.execute(query("migrate", "grants"))}
    oids = dict(conn.execute(query("migrate", "relation_oids")))
    restored = 0
    for oid, name, grantee, privilege, grantable in before:
        if name in oids and oids[name] != oid and (name, grantee, privilege) not in now:
            conn.execute(
                compose(
                    "migrate",
                    "grant",
                    privilege=sql.SQL(privilege),  # a keyword from aclexplode: SELECT, INSERT, ...
                    relation=sql.Identifier("deribit", name),
                    grantee=sql.Identifier(grantee) if grantee is not None else sql.SQL("PUBLIC"),  # NULL: PUBLIC
                    grant_option=sql.SQL(" WITH GRANT OPTION" if grantable else ""),
                )
            )
            restored += 1
    return restored


def _restore_grants_after(conn: psycopg.Connection, grants: list[tuple]) -> None:
    if not grants or conn.closed:
        return
    try:
        with conn.transaction():
            if restored := _restore_grants(conn, grants):
                log.info("restored %d privilege(s) on re-created relations of schema deribit", restored)
    except psycopg.Error as exc:  # the run's own error (if any) is the one to report
        log.warning("could not restore privileges on schema deribit: %s", " ".join(str(exc).split()))


def _record(conn: psycopg.Connection, step: Step, edition: str, seconds: float) -> None:
    f = step.file
    if f.version is None:
        conn.execute(query("migrate", "record_repeatable"), {"name": f.name, "sha256": f.sha256, "seconds": seconds})
        return
    if step.action == "apply":
        # The repeatable files run after the migrations; should they fail (or be refused), this mark makes the
        # next run apply them again even though none of them changed.
        conn.execute(query("migrate", "repeatables_stale"))
    conn.execute(
        query("migrate", "record_migration"),
        {
            "version": f.version,
            "name": f.name,
            "sha256": f.sha256,
            "status": "skipped" if step.action == "skip" else "applied",
            "edition": edition,
            "seconds": seconds,
        },
    )


def _execute_step(conn: psycopg.Connection, step: Step, edition: str) -> None:
    started = time.monotonic()
    if step.action == "skip":
        with conn.transaction():
            _record(conn, step, edition, 0.0)
    elif step.file.transactional:
        with conn.transaction(), _users_objects_kept(conn, step.file):
            _run_statements(conn, step.file)
            _record(conn, step, edition, time.monotonic() - started)
    else:
        _run_statements(conn, step.file)
        with conn.transaction():
            _record(conn, step, edition, time.monotonic() - started)


def _announce(step: Step, progress: Callable[[Step], None] | None) -> None:
    if progress:
        progress(step)
    log.info("%s", step.describe())


def _apply_repeatables(
    conn: psycopg.Connection, steps: list[Step], edition: str, progress: Callable[[Step], None] | None
) -> None:
    """Re-apply the repeatable files in one transaction: all of them or, if one fails, none (views of one file
    use those of another; a half-replaced set could pair a new view with an old function)."""
    if not all(s.file.transactional for s in steps):
        for step in steps:
            _announce(step, progress)
            _execute_step(conn, step, edition)
        return
    with conn.transaction():
        for step in steps:
            _announce(step, progress)
            started = time.monotonic()
            with _users_objects_kept(conn, step.file):
                _run_statements(conn, step.file)
            _record(conn, step, edition, time.monotonic() - started)


def _ensure_timescaledb_available(conn: psycopg.Connection) -> None:
    row = conn.execute(query("migrate", "timescaledb_available")).fetchone()
    if row is None:
        raise UserError(
            "this PostgreSQL server has no timescaledb extension: use a TimescaleDB server "
            "(see docker/timescale/) or the embedded cluster (`deribit-ts db up`)"
        )


def apply_all(
    dsn: str,
    *,
    dry_run: bool = False,
    progress: Callable[[Step], None] | None = None,
    migrations: list[SqlFile] | None = None,
    repeatables: list[SqlFile] | None = None,
) -> list[Step]:
    """Bring the database at ``dsn`` up to date; return the steps taken (or, with dry_run, planned)."""
    migrations = load_migrations() if migrations is None else migrations
    repeatables = load_repeatables() if repeatables is None else repeatables
    with connect(dsn, autocommit=True, application_name="deribit-ts migrate") as conn:
        _ensure_timescaledb_available(conn)
        if dry_run:
            return plan(conn, edition_of(server_info(conn)), migrations, repeatables)
        conn.execute(query("migrate", "lock"), {"key": ADVISORY_LOCK_KEY})
        try:
            with conn.transaction():
                create_ledger(conn)
            # Planned under the lock: a concurrent run that held it has already applied its steps.
            edition = edition_of(server_info(conn))
            steps = plan(conn, edition, migrations, repeatables)
            grants = conn.execute(query("migrate", "grants")).fetchall() if steps else []
            try:
                for step in steps:
                    if step.action != "reapply":
                        _announce(step, progress)
                        _execute_step(conn, step, edition)
                _apply_repeatables(conn, [s for s in steps if s.action == "reapply"], edition, progress)
            finally:
                # Also after a failed step: what the committed steps re-created gets its privileges back now,
                # while this run still knows them.
                _restore_grants_after(conn, grants)
            return steps
        finally:
            conn.execute(query("migrate", "unlock"), {"key": ADVISORY_LOCK_KEY})


def migration_state(
    conn: psycopg.Connection, migrations: list[SqlFile] | None = None, repeatables: list[SqlFile] | None = None
) -> dict:
    """Summary for `db status`: applied and skipped migrations, the latest applied, and what `db migrate` would
    do now (pending migrations, changed view files), or why it would refuse."""
    migrations = load_migrations() if migrations is None else migrations
    repeatables = load_repeatables() if repeatables is None else repeatables
    ledger, applied_repeatables = _ledger(conn)
    applied = [v for v, (_, _, status) in ledger.items() if status == "applied"]
    skipped = [v for v, (_, _, status) in ledger.items() if status == "skipped"]
    state: dict = {
        "applied": len(applied),
        "skipped": len(skipped),
        "latest": ledger[max(applied)][0] if applied else None,
        "problem": None,
    }
    edition = edition_of(server_info(conn))
    try:
        steps = plan(conn, edition, migrations, repeatables)
    except UserError as exc:
        state.update(pending=None, views_changed=None, problem=str(exc))
        return state
    state["pending"] = len([s for s in steps if s.action == "apply"])
    state["views_changed"] = len(_changed_repeatables(edition, repeatables, applied_repeatables))
    return state
