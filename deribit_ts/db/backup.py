"""Backups the way TimescaleDB requires: `pg_dump --format=custom` plus a manifest, and restores that check it.

A backup is two files in the backup directory:

- ``deribit-<UTC time>.dump``           pg_dump's custom format (compressed; pg_restore reads it)
- ``deribit-<UTC time>.manifest.json``  versions, the dump's sha256, and per table of the schemas ``deribit``
                                        and ``deribit_ts`` its row count and a checksum computed in SQL

The manifest describes exactly what the dump holds: it is computed inside a REPEATABLE READ transaction whose
snapshot pg_dump imports (``--snapshot``), so rows the collector writes meanwhile are in neither.

Backups never block the collector: pg_dump and the manifest's queries take only ACCESS SHARE locks, which
conflict with nothing the collector or a backfill does (INSERT/UPDATE/DELETE take ROW EXCLUSIVE); only DDL
(a migration, dropping chunks) waits for the dump. The exporting transaction is read-only and ends as soon as the
dump and the manifest, computed side by side, are done.

Restore follows TimescaleDB's procedure: into an EMPTY database, create the extension at the backup's version,
``SELECT timescaledb_pre_restore()``, pg_restore, ``SELECT timescaledb_post_restore()``; then every table's
row count and checksum are compared with the manifest. Only a superuser may restore (TimescaleDB's
pre-restore step stops its job scheduler, and pg_restore creates chunks in TimescaleDB's own schema); what it
restores is then handed over to the target database's owner when that is another role (the embedded cluster's
owner, who may create the empty database itself).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from deribit_ts.config import mask_password
from deribit_ts.db.connect import connect, server_info
from deribit_ts.db.queries import compose, query
from deribit_ts.errors import UserError

SCHEMAS = ("deribit", "deribit_ts")
MANIFEST_FORMAT = 1
_NAME = re.compile(r"^deribit-(\d{8}T\d{6}(?:\.\d+)?Z)\.dump$")


@dataclass(frozen=True)
class BackupResult:
    dump: Path
    manifest: Path
    tables: int
    rows: int
    pruned: list[Path]


# ------------------------------------------------------------------------------------------ manifest


def table_checksums(conn: psycopg.Connection) -> dict[str, dict]:
    """{"schema.table": {"rows": n, "checksum": hex}} for every table of our schemas, as this session sees them."""
    conn.execute(query("backup", "stable_text"))
    result = {}
    for schema, table in conn.execute(query("backup", "tables"), {"schemas": list(SCHEMAS)}).fetchall():
        rows, checksum = conn.execute(compose("backup", "checksum", table=sql.Identifier(schema, table))).fetchone()
        result[f"{schema}.{table}"] = {"rows": rows, "checksum": checksum}
    return result


def compare(expected: dict[str, dict], actual: dict[str, dict]) -> list[str]:
    """One line per table whose count or checksum differs (or that is missing on one side)."""
    problems = []
    for name in sorted(expected.keys() | actual.keys()):
        want, got = expected.get(name), actual.get(name)
        if want is None:
            problems.append(f"{name}: not in the backup's manifest")
        elif got is None:
            problems.append(f"{name}: missing after the restore")
        elif want != got:
            problems.append(
                f"{name}: {got['rows']} rows (checksum {got['checksum'][:8]}), "
                f"the manifest says {want['rows']} (checksum {want['checksum'][:8]})"
            )
    return problems


def manifest_path(dump: Path) -> Path:
    return dump.with_name(dump.name.removesuffix(".dump") + ".manifest.json")


# -------------------------------------------------------------------------------------- PostgreSQL tools


def pg_tool(name: str, server_major: int, extra_bindirs: list[Path]) -> str:
    """The path of pg_dump/pg_restore of the server's major version: the private prefix's, else PATH's."""
    candidates = [d / name for d in extra_bindirs]
    on_path = shutil.which(name)
    if on_path:
        candidates.append(Path(on_path))
    seen = []
    for candidate in candidates:
        major = _tool_major(candidate)
        if major == server_major:
            return str(candidate)
        if major is not None:
            seen.append(f"{candidate} is {major}")
    found = f" ({'; '.join(seen)})" if seen else ""
    raise UserError(
        f"no {name} of PostgreSQL {server_major} found{found}: install the client programs of "
        f"PostgreSQL {server_major} or put them on PATH"
    )


def client_bindirs(home: Path) -> list[Path]:
    """Where the private prefix's pg_dump/pg_restore are (the one of the server's major version is picked later)."""
    from deribit_ts.db.embedded import Cluster

    cluster = Cluster(home)
    remembered = cluster.bindir()
    return ([remembered] if remembered else []) + sorted(cluster.prefix.glob("usr/lib/postgresql/*/bin"), reverse=True)


def _tool_major(path: Path) -> int | None:
    if not path.is_file():
        return None
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"\) (\d+)", out)
    return int(match.group(1)) if match else None


def _server_major(conn: psycopg.Connection) -> int:
    return int(conn.execute(query("backup", "server_major")).fetchone()[0]) // 10000


def _client_args(dsn: str) -> tuple[str, dict[str, str]]:
    """The DSN without its password (argv is visible in `ps`) and an environment carrying it."""
    params = conninfo_to_dict(dsn)
    password = params.pop("password", None)
    env = {**os.environ, "PGCONNECT_TIMEOUT": "10"}
    if password is not None:
        env["PGPASSWORD"] = str(password)
    return make_conninfo(**params), env


def _tool_error(result: subprocess.CompletedProcess, what: str) -> UserError:
    lines = [line.strip() for line in (result.stderr or "").splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()] or lines
    return UserError(f"{what} failed: {mask_password(errors[0] if errors else 'no output')}")


# ---------------------------------------------------------------------------------------------- backup


def backup(
    dsn: str, to: Path, *, keep: int | None = None, bindirs: list[Path] | None = None, now: datetime | None = None
) -> BackupResult:
    """Dump the database into ``to`` with its manifest; then keep only the newest ``keep`` backups."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S.%fZ")
    dump = to / f"deribit-{stamp}.dump"
    partial = dump.with_name(dump.name + ".partial")
    with connect(dsn) as conn:
        conn.execute(query("backup", "snapshot_transaction"))
        info = server_info(conn)
        extension_schema = _extension_schema(conn)
        if info.timescaledb_version is None:
            raise UserError(
                f"the database {mask_password(dsn)} has no TimescaleDB extension: nothing of "
                "deribit-ts to back up (run `deribit-ts db migrate` first)"
            )
        pg_dump = pg_tool("pg_dump", _server_major(conn), bindirs or [])
        _private_directory(to)
        snapshot = conn.execute(query("backup", "export_snapshot")).fetchone()[0]
        conninfo, env = _client_args(dsn)
        # pg_dump reads the very snapshot the manifest is computed in, while this transaction stays open.
        with subprocess.Popen(
            [
                pg_dump,
                "--format=custom",
                f"--snapshot={snapshot}",
                "--no-password",
                f"--file={partial}",
                f"--dbname={conninfo}",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        ) as proc:
            try:
                tables = table_checksums(conn)
                stderr = proc.communicate()[1]
            except BaseException:
                proc.kill()
                partial.unlink(missing_ok=True)
                raise
        conn.rollback()  # read only: nothing to keep; ends the snapshot right after the dump
    if proc.returncode != 0:
        partial.unlink(missing_ok=True)
        raise _tool_error(subprocess.CompletedProcess([], proc.returncode, "", stderr), "pg_dump")
    manifest = {
        "format": MANIFEST_FORMAT,
        "created_at": datetime.now(UTC).isoformat(),
        "dump": dump.name,
        "dump_sha256": _sha256(partial),
        "postgres_version": info.postgres_version,
        "timescaledb_version": info.timescaledb_version,
        "timescaledb_edition": info.edition,
        "timescaledb_schema": extension_schema,
        "tables": tables,
    }
    _write_atomically(manifest_path(dump), json.dumps(manifest, indent=2) + "\n")
    partial.chmod(0o600)
    partial.replace(dump)  # the dump appears last: a backup listed is a complete one
    pruned = prune(to, keep) if keep is not None else []
    return BackupResult(dump, manifest_path(dump), len(tables), sum(t["rows"] for t in tables.values()), pruned)


def list_backups(directory: Path) -> list[Path]:
    """Complete backups in ``directory``, oldest first (the names sort by time)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if _NAME.match(p.name) and manifest_path(p).is_file())


def prune(directory: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` backups (dump and manifest) and leftovers of interrupted ones."""
    old = list_backups(directory)[:-keep] if keep > 0 else list_backups(directory)
    for dump in old:
        dump.unlink()
        manifest_path(dump).unlink(missing_ok=True)
    for partial in directory.glob("deribit-*.dump.partial"):
        partial.unlink(missing_ok=True)
    return old


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        handle.write(text)
    tmp.chmod(0o600)  # (an older file of that name keeps its mode through O_TRUNC)
    tmp.replace(path)


def _private_directory(path: Path) -> None:
    """Backups hold every row (and the database's users): 0700, readable by their owner only. A directory of ours
    made before (0755 then) is tightened; someone else's is left as its owner set it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_uid == os.getuid():
        path.chmod(0o700)


# --------------------------------------------------------------------------------------------- restore


def read_manifest(dump: Path) -> dict:
    if not dump.is_file():
        raise UserError(f"{dump} does not exist or is not a file: give the .dump file `deribit-ts backup` wrote")
    path = manifest_path(dump)
    try:
        manifest = json.loads(path.read_text())
        manifest["tables"], manifest["timescaledb_version"]  # noqa: B018 (the keys we rely on)
    except FileNotFoundError:
        raise UserError(f"{path} is missing: a backup is the .dump and its .manifest.json side by side") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path} is not a deribit-ts backup manifest ({exc.__class__.__name__})") from None
    if manifest.get("dump_sha256") and manifest["dump_sha256"] != _sha256(dump):
        raise UserError(f"{dump} does not match its manifest (sha256 differs): the file is damaged or was replaced")
    return manifest


def restore(dump: Path, dsn: str, *, bindirs: list[Path] | None = None) -> dict[str, dict]:
    """Restore ``dump`` into the empty database ``dsn`` and check it against the manifest; returns the tables."""
    manifest = read_manifest(dump)
    version = manifest["timescaledb_version"]
    with connect(dsn, autocommit=True) as conn:
        _refuse_non_empty(conn, dsn)
        _refuse_non_superuser(conn)
        pg_restore = pg_tool("pg_restore", _server_major(conn), bindirs or [])
        conninfo, env = _client_args(dsn)
        schema = manifest.get("timescaledb_schema") or "public"
        contents = _contents_without_extension(pg_restore, dump, schema, env)
        _create_extension(conn, version, schema)
        conn.execute(compose("backup", "pre_restore", schema=sql.Identifier(schema)))
        try:
            # --no-owner: the restoring role owns everything (the backup's roles may not exist here).
            result = subprocess.run(
                [
                    pg_restore,
                    "--no-owner",
                    "--exit-on-error",
                    "--no-password",
                    f"--use-list={contents}",
                    f"--dbname={conninfo}",
                    str(dump),
                ],
                env=env,
                capture_output=True,
                text=True,
            )
        finally:
            conn.execute(compose("backup", "post_restore", schema=sql.Identifier(schema)))
            contents.unlink(missing_ok=True)
        if result.returncode != 0:
            error = _tool_error(result, "pg_restore")
            raise UserError(f"{error}; the target database is incomplete: drop it and restore into a new one")
    with connect(dsn) as conn:
        _hand_over_to_the_databases_owner(conn)
        tables = table_checksums(conn)
    problems = compare(manifest["tables"], tables)
    if problems:
        raise UserError(
            f"the restored database differs from the backup's manifest: {problems[0]}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
        )
    return tables


def _refuse_non_superuser(conn: psycopg.Connection) -> None:
    if conn.execute(query("backup", "is_superuser")).fetchone() != (True,):
        raise UserError(
            f"restoring needs a superuser (TimescaleDB's restore stops its job scheduler and writes into its own "
            f"schema), {conn.info.user!r} is none: on the embedded cluster, give --dsn the superuser's DSN "
            "(`deribit-ts db url --superuser`) with the empty database's name; nothing was written"
        )


def _hand_over_to_the_databases_owner(conn: psycopg.Connection) -> None:
    """pg_restore --no-owner made us (a superuser) the owner of everything: the database's owner, if it is a role
    that is no superuser (the one that created it to restore into), gets it all, as it would have made it."""
    from deribit_ts.db.owner import hand_over

    row = conn.execute(query("backup", "database_owner")).fetchone()
    if row is not None and not row[1]:
        hand_over(conn, conn.info.user, row[0])


def _contents_without_extension(pg_restore: str, dump: Path, schema: str, env: dict[str, str]) -> Path:
    """The dump's table of contents minus the extension (and its schema): created beforehand at the right
    version, as TimescaleDB requires, so pg_restore must not create them again."""
    listed = subprocess.run([pg_restore, "--list", str(dump)], env=env, capture_output=True, text=True)
    if listed.returncode != 0:
        raise _tool_error(listed, f"reading {dump.name} (pg_restore --list)")
    ours = re.compile(rf"^\d+; \d+ \d+ (EXTENSION - timescaledb|SCHEMA - {re.escape(schema)}) ")
    kept = [line for line in listed.stdout.splitlines() if not ours.match(line + " ")]
    path = dump.with_name(f".{dump.name}.{os.getpid()}.list")
    path.write_text("\n".join(kept) + "\n")
    return path


def _refuse_non_empty(conn: psycopg.Connection, dsn: str) -> None:
    """An empty database: no schema but public, nothing in public, no extension but plpgsql and timescaledb."""
    row = conn.execute(query("backup", "non_empty_timescale" if _has_timescaledb(conn) else "non_empty")).fetchone()
    if any(row):
        raise UserError(
            f"the target database {mask_password(dsn)} is not empty: restore into a new, empty "
            "database (e.g. createdb) so nothing is overwritten or mixed"
        )


def _extension_schema(conn: psycopg.Connection) -> str | None:
    row = conn.execute(query("backup", "extension_schema")).fetchone()
    return row[0] if row else None


def _has_timescaledb(conn: psycopg.Connection) -> bool:
    return conn.execute(query("backup", "has_timescaledb")).fetchone() is not None


def _create_extension(conn: psycopg.Connection, version: str, schema: str) -> None:
    """TimescaleDB at the backup's version, in the schema it had there (objects refer to it by name)."""
    installed = conn.execute(query("backup", "installed_timescaledb")).fetchone()
    if installed:
        if installed[0] != version:
            raise UserError(
                f"the target database has TimescaleDB {installed[0]}, the backup was taken with "
                f"{version}: restore into a database of a server with TimescaleDB {version}"
            )
        if installed[1] != schema:
            raise UserError(
                f"the target database has TimescaleDB in schema {installed[1]}, the backup in "
                f"{schema}: restore into a new database without the extension"
            )
        return
    available = {r[0] for r in conn.execute(query("backup", "available_timescaledb")).fetchall()}
    if version not in available:
        offered = ", ".join(sorted(available)) or "none"
        raise UserError(
            f"the backup needs TimescaleDB {version}, the target server offers {offered}: restore on "
            f"a server with TimescaleDB {version} (then upgrade with ALTER EXTENSION if you like)"
        )
    conn.execute(compose("backup", "create_schema", schema=sql.Identifier(schema)))
    conn.execute(compose("backup", "create_timescaledb", schema=sql.Identifier(schema), version=sql.Literal(version)))
