"""The embedded cluster: a private PostgreSQL + TimescaleDB that `deribit-ts db up` creates and runs.

Files under ``home`` (default ~/.local/share/deribit-ts):

- ``cluster/``          the data directory (initdb'd once; also holds the unix socket)
- ``cluster.initdb/``   only while a first `up` initialises: initdb works here (with its short-lived password
                        copy) and the finished data directory is renamed to ``cluster/``, so a first `up` killed
                        part-way leaves no half-made cluster, only this directory, which the next `up` removes
- ``cluster.json``      what to remember between runs: port, binaries, major version
- ``cluster.password``  the generated password of the ``deribit_ts`` superuser (mode 0600), used only to bootstrap:
                        create the database, the TimescaleDB extension and the owner role
- ``owner.password``    the generated password of ``deribit_owner`` (mode 0600), the role everything else connects
                        as (`db url`): it owns the database and all of deribit-ts's objects, and is no superuser
- ``cluster.log``       the server log
- ``postgres/``         the private PostgreSQL prefix (scripts/install-timescaledb.sh), unless PostgreSQL with
                        TimescaleDB is already installed on the machine

Running as root: PostgreSQL refuses to run as root, so the server runs as the system user ``deribit-ts``
(created when missing). The data directory and log file belong to that user; the password and state files stay
root's. The user also needs to *reach* them and the binaries, and homes such as /root are mode 0700, so every
directory on the way that it cannot enter gets a POSIX ACL entry granting that one user search (x) permission:
no listing, no reading, nothing for anybody else. Only on a file system without ACLs do we fall back to o+x.
"""

from __future__ import annotations

import errno
import fcntl
import grp
import json
import os
import pwd
import re
import secrets
import shutil
import socket
import stat
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from deribit_ts.db.connect import connect, database_size, server_info
from deribit_ts.errors import UserError
from deribit_ts.processes import process_alive

SUPERUSER = "deribit_ts"  # the bootstrap superuser (initdb's): creates the database, the extension, the owner
OWNER = "deribit_owner"  # what deribit-ts connects as: owns the database and everything in it, no superuser
DATABASE = "deribit"
SERVICE_USER = "deribit-ts"  # the OS user the server runs as when we are root
START_TIMEOUT_S = 60
# A unix socket path must fit in sockaddr_un.sun_path (108 bytes); longer data dirs get TCP only.
MAX_SOCKET_PATH = 100

NOT_SET_UP = "the embedded cluster is not set up; run `deribit-ts db up`"


@dataclass(frozen=True)
class Binaries:
    bindir: Path
    major: int
    source: str  # "system" or the private prefix it came from

    def tool(self, name: str) -> str:
        return str(self.bindir / name)


class Cluster:
    def __init__(self, home: Path, prefix: Path | None = None):
        self.home = Path(home).expanduser().absolute()
        self._prefix_given = prefix is not None or bool(os.environ.get("DERIBIT_TS_PG_PREFIX"))
        env_prefix = os.environ.get("DERIBIT_TS_PG_PREFIX")
        self.prefix = Path(prefix or env_prefix or self.home / "postgres").expanduser().absolute()
        self.data_dir = self.home / "cluster"
        self.state_path = self.home / "cluster.json"
        self.password_path = self.home / "cluster.password"
        self.owner_password_path = self.home / "owner.password"
        self.init_dir = self.home / "cluster.initdb"  # scratch space of a first initialisation
        self._lock_fds: tuple[int, ...] = ()  # the home's lock while held, for initdb to inherit

    # ----------------------------------------------------------------- public API

    def up(self, quiet: bool = False, *, port: int | None = None) -> None:
        """Create (once) and start the cluster; a no-op when it already runs."""
        self._make_home()
        if self.is_running() and self._ready():
            self._refuse_port_change(port)
            return
        with self._exclusive():
            if self.is_running():  # another process started it while we waited for the lock
                self._finish_first_start(quiet)
                self._refuse_port_change(port)
                return
            self._start_cluster(quiet, port)

    def _ready(self) -> bool:
        """Started once completely, by a version that made the owner role (an older one connected as the
        superuser: its `up` hands everything over to the owner first)."""
        state = self._state()
        return bool(state.get("ready")) and state.get("owner") == OWNER

    def _start_cluster(self, quiet: bool, port: int | None) -> None:
        binaries = self._binaries()
        owner = _ServerOwner.for_current_user()
        self._discard_interrupted_init(quiet)
        if not self._initialized():
            self._initdb(binaries, owner, quiet)
        self._check_major(binaries)
        port = self._choose_port(port)
        self._clear_stale_pid_file(quiet)
        self._prepare_start(binaries, owner, port)
        self._start(binaries, owner)
        self._save_state(port=port)  # only a port the server could listen on is remembered
        self._bootstrap(quiet)
        if not quiet:
            _say(f"embedded cluster running on 127.0.0.1:{port} (data: {self.data_dir}, log: {self.log_path()})")

    def down(self) -> None:
        """Stop the server with a fast shutdown (open transactions roll back); a no-op when stopped."""
        if not self.is_running():
            return
        with self._exclusive():
            if self.is_running():  # not stopped by another process meanwhile
                self._stop()

    def _stop(self) -> None:
        binaries = self._binaries(install=False)
        owner = _ServerOwner.for_current_user()
        result = owner.run(
            [binaries.tool("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "-t", str(START_TIMEOUT_S), "stop"]
        )
        if result.returncode != 0:
            raise UserError(f"could not stop the embedded cluster: {_last_line(result.stderr)} (see {self.log_path()})")

    def status(self) -> dict:
        state = self._state()
        pid = self._postmaster_pid()
        info: dict = {
            "running": pid is not None,
            "pid": pid,
            "port": state.get("port"),
            "data_dir": str(self.data_dir),
            "initialized": self._initialized(),
            "prefix": state.get("bindir_source", str(self.prefix)),
            "bindir": state.get("bindir"),
            "log": str(self.log_path()),
        }
        if pid is not None and self.url_if_known():
            with connect(self.url(), autocommit=True) as conn:
                server = server_info(conn)
                size = database_size(conn)
            info.update(
                postgres_version=server.postgres_version,
                timescaledb_version=server.timescaledb_version,
                edition=server.edition,
                data_size_bytes=size,
            )
        return info

    def url(self) -> str:
        known = self.url_if_known()
        if known is None:
            raise UserError(NOT_SET_UP)
        return known

    def url_if_known(self) -> str | None:
        """The owner's DSN: what every command connects as (None until `up` has made the owner role)."""
        return self._url_of(OWNER, self.owner_password_path) if self._state().get("owner") == OWNER else None

    def superuser_url(self) -> str:
        """The bootstrap superuser's DSN: for creating databases, the extension and roles, nothing else."""
        known = self._url_of(SUPERUSER, self.password_path)
        if known is None:
            raise UserError(NOT_SET_UP)
        return known

    def _url_of(self, role: str, password_path: Path) -> str | None:
        port = self._state().get("port")
        if not port or not self._initialized() or not password_path.is_file():
            return None
        password = password_path.read_text().strip()
        return f"postgresql://{role}:{password}@127.0.0.1:{port}/{DATABASE}"

    def is_running(self) -> bool:
        return self._postmaster_pid() is not None

    def log_path(self) -> Path:
        return self.home / "cluster.log"

    def bindir(self) -> Path | None:
        """Where the cluster's PostgreSQL programs (psql, pg_dump, ...) are, once `up` has found them."""
        remembered = self._state().get("bindir")
        return Path(remembered) if remembered else None

    # ------------------------------------------------------------ state & checks

    def _make_home(self) -> None:
        try:
            self.home.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(
                f"cannot use {self.home} as the deribit-ts home ({exc.strerror}): set DERIBIT_TS_HOME "
                "to a writable directory"
            ) from None

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Serialize up/down of one home across processes (two commands may both start the cluster)."""
        with open(self.home / "cluster.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._lock_fds = (lock.fileno(),)
            try:
                yield
            finally:
                self._lock_fds = ()

    def _finish_first_start(self, quiet: bool) -> None:
        """A server that runs, but whose first `up` was killed before the port was remembered or the
        database created: finish that now (called under the home's lock)."""
        if self._ready():
            return
        if not self._state().get("port"):
            port = _port_in_lock_file(self.data_dir / "postmaster.pid")
            if port is None:
                raise UserError(
                    "the embedded cluster runs but its port is unknown; run `deribit-ts db down` "
                    "and `deribit-ts db up` again"
                )
            self._save_state(port=port)
        self._bootstrap(quiet)

    def _bootstrap(self, quiet: bool) -> None:
        """As the superuser: the database, the extension, the owner role; hand over what the superuser owns."""
        from deribit_ts.db.owner import bootstrap

        handed = bootstrap(self.superuser_url(), DATABASE, OWNER, self._password(self.owner_password_path))
        if handed and not quiet:
            _say(f"{handed} object(s) made by the superuser now belong to {OWNER!r}, the role deribit-ts connects as")
        self._save_state(ready=True, owner=OWNER)

    def _check_home(self) -> None:
        if self.home.exists() and not self.home.is_dir():
            raise UserError(f"{self.home} is not a directory: set DERIBIT_TS_HOME to a directory")

    def _state(self) -> dict:
        self._check_home()
        try:
            return json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise UserError(
                f"cannot read {self.state_path} ({exc}); delete it and run `deribit-ts db up` "
                "(a new free port will be chosen)"
            ) from None

    def _save_state(self, **changes: object) -> None:
        state = {**self._state(), **changes}
        tmp = self.state_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.replace(self.state_path)

    def _initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").is_file()

    def _check_major(self, binaries: Binaries) -> None:
        data_major = (self.data_dir / "PG_VERSION").read_text().strip()
        if data_major != str(binaries.major):
            raise UserError(
                f"the data directory {self.data_dir} was created by PostgreSQL {data_major}, but the "
                f"available server is PostgreSQL {binaries.major} ({binaries.bindir}); start it with "
                f"PostgreSQL {data_major}, or move the directory away and run `deribit-ts db up` "
                "to create a new cluster"
            )

    def _refuse_port_change(self, port: int | None) -> None:
        current = self._state().get("port")
        if port is not None and port != current:
            raise UserError(
                f"the embedded cluster already runs on port {current}; "
                f"run `deribit-ts db down` first to move it to port {port}"
            )

    def _choose_port(self, requested: int | None) -> int:
        remembered = self._state().get("port")
        port = requested or remembered or _free_port()
        if _port_is_free(port):
            return port
        if requested:
            raise UserError(f"port {port} on 127.0.0.1 is in use by another program; choose another one")
        raise UserError(
            f"port {port} on 127.0.0.1 (remembered in {self.state_path}) is in use by another "
            "program; stop that program, or run `deribit-ts db up --port N` with a free port"
        )

    def _postmaster_pid(self) -> int | None:
        """The server's PID when postmaster.pid names a live process working in our data directory."""
        self._check_home()
        pid = _pid_in_lock_file(self.data_dir / "postmaster.pid")
        if pid is None or not process_alive(pid) or _process_name(pid) not in (None, "postgres"):
            return None
        cwd = _process_cwd(pid)
        # PostgreSQL chdir()s into its data directory: a live PID elsewhere is a recycled PID, not our server.
        if cwd is not None and cwd != self.data_dir.resolve():
            return None
        return pid

    def _clear_stale_pid_file(self, quiet: bool) -> None:
        lock_file = self.data_dir / "postmaster.pid"
        pid = _pid_in_lock_file(lock_file)
        if pid is None and not lock_file.exists():
            return
        if pid is not None and process_alive(pid) and _process_name(pid) is None:
            raise UserError(
                f"{lock_file} names PID {pid}, which is running but cannot be inspected; if it is not a "
                f"PostgreSQL server for {self.data_dir}, delete {lock_file} and run `deribit-ts db up` again"
            )
        # The PID is dead, or alive but recycled by an unrelated process (common after a container restart).
        # PostgreSQL itself removes a lock file of a dead PID, but not of a recycled one: remove it ourselves.
        lock_file.unlink()
        if not quiet:
            _say(f"removed a stale {lock_file} (PID {pid} is not a running server for this cluster)")

    # ------------------------------------------------------------------ binaries

    def _binaries(self, install: bool = True) -> Binaries:
        state = self._state()
        remembered = Path(state["bindir"]) if state.get("bindir") else None
        if remembered and _has_server(remembered):
            return Binaries(remembered, _major_of(remembered), state.get("bindir_source", "system"))
        found = self._discover()
        if found is None and install:
            self._run_installer()
            found = self._from_prefix()
        if found is None:
            raise UserError(
                f"no PostgreSQL with TimescaleDB found (looked on PATH and in {self.prefix}); "
                "run `deribit-ts db up` to install one"
            )
        self._save_state(bindir=str(found.bindir), bindir_source=found.source, pg_major=found.major)
        return found

    def _discover(self) -> Binaries | None:
        # An explicit prefix (argument or DERIBIT_TS_PG_PREFIX) wins; otherwise a TimescaleDB installed on the
        # machine is preferred, since it may be the full (TSL) edition.
        order = (self._from_prefix, _from_path) if self._prefix_given else (_from_path, self._from_prefix)
        for finder in order:
            found = finder()
            if found is not None:
                return found
        return None

    def _from_prefix(self) -> Binaries | None:
        for bindir in sorted(self.prefix.glob("usr/lib/postgresql/*/bin"), reverse=True):
            sharedir = self.prefix / "usr/share/postgresql" / bindir.parent.name
            if _has_server(bindir) and _has_timescaledb(sharedir):
                return Binaries(bindir, _major_of(bindir), str(self.prefix))
        return None

    def _run_installer(self) -> None:
        from deribit_ts.resources import install_script

        _say(
            f"PostgreSQL with TimescaleDB was not found; installing it into {self.prefix} (about 40 MB download, once)"
        )
        result = subprocess.run(["bash", str(install_script()), str(self.prefix)], stdout=sys.stderr)
        if result.returncode != 0:
            raise UserError(f"installing PostgreSQL + TimescaleDB into {self.prefix} failed (see the messages above)")

    # ------------------------------------------------------------ init and start

    def _discard_interrupted_init(self, quiet: bool) -> None:
        """Remove what a first `up` killed part-way left behind (called under the home's lock).

        The lock is also held by the initdb a killed `up` started (it inherits the lock's descriptor), so by
        the time we get here no initdb of ours still writes into the scratch directory.
        """
        if self.init_dir.exists():
            shutil.rmtree(self.init_dir)
            if not quiet:
                _say(f"removed {self.init_dir}, left by a first `deribit-ts db up` that was interrupted")
        self._legacy_password_copy().unlink(missing_ok=True)
        if self._initialized() and not _has_include_line(self.data_dir) and not self._state().get("port"):
            # Left by a version that initialised in place and was killed: it never started, so holds no data.
            aside = self.home / f"cluster.incomplete-{os.getpid()}"
            self.data_dir.rename(aside)
            _say(
                f"{self.data_dir} was never completely initialised (an earlier `db up` was interrupted): "
                f"moved it to {aside} and creating the cluster again; delete {aside} when you like"
            )

    def _legacy_password_copy(self) -> Path:
        return self.home / "cluster.password.initdb"  # where earlier versions kept initdb's password copy

    def _initdb(self, binaries: Binaries, owner: _ServerOwner, quiet: bool) -> None:
        """Initialise in a scratch directory and rename it into place once complete: all or nothing."""
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise UserError(
                f"{self.data_dir} exists but is not a PostgreSQL data directory; "
                "move it away and run `deribit-ts db up` again"
            )
        password = self._password(self.password_path)
        if not quiet:
            _say(f"creating the embedded cluster in {self.data_dir} (PostgreSQL {binaries.major})")
        self.init_dir.mkdir(mode=0o700)
        owner.take(self.init_dir, mode=0o700)
        try:
            self._initdb_in(self.init_dir, password, binaries, owner)
            if self.data_dir.exists():
                self.data_dir.rmdir()  # empty (checked above)
            (self.init_dir / "data").rename(self.data_dir)
        finally:
            shutil.rmtree(self.init_dir, ignore_errors=True)  # with the password copy, on every path

    def _initdb_in(self, scratch: Path, password: str, binaries: Binaries, owner: _ServerOwner) -> None:
        data = scratch / "data"
        data.mkdir(mode=0o700)
        owner.take(data, mode=0o700)
        owner.reach(data, binaries.bindir)
        # initdb reads the password from a file: a short-lived copy the server's user can read.
        pwfile = scratch / "password"
        _write_private(pwfile, password + "\n")
        owner.take(pwfile, mode=0o600)
        try:
            result = owner.run(
                [
                    binaries.tool("initdb"),
                    "-D",
                    str(data),
                    "-U",
                    SUPERUSER,
                    f"--pwfile={pwfile}",
                    # scram everywhere: no trust, not even over the unix socket.
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    # The builtin provider (PG 17) sorts and classifies without the host's libc locales, which the
                    # private glibc may not be able to read.
                    "--locale=C",
                    "--locale-provider=builtin",
                    "--builtin-locale=C.UTF-8",
                    "--no-instructions",
                ],
                # Our lock stays held while initdb (or its postgres child) lives, even if we are killed,
                # and initdb dies with us instead of running on as an orphan.
                pass_fds=self._lock_fds,
                die_with_parent=True,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise UserError(f"initdb failed: {_last_line(result.stderr or result.stdout)}")
        with open(data / "postgresql.conf", "a") as conf:
            conf.write(_INCLUDE_BLOCK)

    def _password(self, path: Path) -> str:
        known = path.read_text().strip() if path.is_file() else ""
        if known:  # an empty file (left by an earlier version killed while writing it) is no password
            return known
        password = secrets.token_urlsafe(24)  # URL-safe: it goes into the DSN unescaped
        _write_private(path, password + "\n")
        return password

    def _prepare_start(self, binaries: Binaries, owner: _ServerOwner, port: int) -> None:
        conf = self.data_dir / "deribit_ts.conf"
        conf.write_text(_server_settings(port, self._socket_dir(port), _is_apache(binaries)))
        owner.take(conf, mode=0o600)
        self.log_path().touch()
        owner.take(self.log_path(), mode=0o600)
        owner.reach(self.data_dir, binaries.bindir)

    def _socket_dir(self, port: int) -> Path | None:
        socket_path = self.data_dir / f".s.PGSQL.{port}"
        return self.data_dir if len(str(socket_path)) <= MAX_SOCKET_PATH else None

    def _start(self, binaries: Binaries, owner: _ServerOwner) -> None:
        log_offset = self.log_path().stat().st_size  # report this start's error, not an older one
        result = owner.run(
            [
                binaries.tool("pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_path()),
                "-w",
                "-t",
                str(START_TIMEOUT_S),
                "start",
            ]
        )
        if result.returncode != 0:
            reason = _last_server_error(self.log_path(), log_offset) or _last_line(result.stderr or result.stdout)
            raise UserError(f"the embedded cluster did not start: {reason} (see {self.log_path()})")


# ---------------------------------------------------------------- server settings


def _server_settings(port: int, socket_dir: Path | None, apache: bool) -> str:
    socket_dirs = _quote(str(socket_dir)) if socket_dir else "''"
    # On the Apache build no background job can exist (add_job and every policy need TSL), so the per-database
    # job schedulers only get in the way: they hold connections that make `CREATE DATABASE ... TEMPLATE`
    # fail in test fixtures (timescale/timescaledb#4048).
    ts_workers = 0 if apache else 8
    return f"""\
# Managed by deribit-ts; rewritten by every `deribit-ts db up`. Put your own changes in postgresql.auto.conf
# (ALTER SYSTEM), which is read after this file.
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = {socket_dirs}
shared_preload_libraries = 'timescaledb'
timescaledb.telemetry_level = off
timescaledb.max_background_workers = {ts_workers}
max_worker_processes = 16
# The private build ships without LLVM.
jit = off
timezone = 'UTC'
log_timezone = 'UTC'
# Each backfill process holds a connection per worker (16 by default) plus one: room for several processes.
max_connections = 200

# Sized for bulk ingest of market data on a small machine (2 cores, a few GB of RAM).
shared_buffers = 512MB
effective_cache_size = 2GB
work_mem = 32MB
maintenance_work_mem = 256MB
# Few, spread-out checkpoints: a backfill writes WAL fast, and every checkpoint forces full-page images again.
max_wal_size = 4GB
min_wal_size = 256MB
checkpoint_timeout = 15min
checkpoint_completion_target = 0.9
wal_compression = lz4
random_page_cost = 1.1
# A crash (not a clean shutdown) may lose the last fraction of a second of commits, but never corrupts the
# database. That is acceptable here: this is a local research copy, every row can be fetched from Deribit
# again, and ingestion resumes from what is actually stored. It makes small-batch commits much cheaper.
synchronous_commit = off
"""


_INCLUDE_BLOCK = (
    "\n# Settings managed by deribit-ts (rewritten by every `deribit-ts db up`)\n"
    "include_if_exists = 'deribit_ts.conf'\n"
)


def _has_include_line(data_dir: Path) -> bool:
    try:
        return "include_if_exists = 'deribit_ts.conf'" in (data_dir / "postgresql.conf").read_text()
    except OSError:
        return False


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, without a moment of wider permissions, whole or not at all: it is
    written beside its name and renamed, so a process killed meanwhile never leaves an empty or partial file (an
    empty password file would be read back as the password)."""
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a process killed while writing
        stale.unlink(missing_ok=True)
    scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(scratch, path)
    finally:
        scratch.unlink(missing_ok=True)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _is_apache(binaries: Binaries) -> bool:
    # Debian's build strips the TSL module; the full edition ships timescaledb-tsl-<version>.so beside it.
    pkglibdir = binaries.bindir.parent / "lib"
    return pkglibdir.is_dir() and not any(pkglibdir.glob("timescaledb-tsl-*.so"))


# -------------------------------------------------------------- finding binaries


def _has_server(bindir: Path) -> bool:
    return all((bindir / tool).is_file() for tool in ("postgres", "initdb", "pg_ctl"))


def _has_timescaledb(sharedir: Path) -> bool:
    return (sharedir / "extension" / "timescaledb.control").is_file()


def _major_of(bindir: Path) -> int:
    result = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True, text=True)
    match = re.search(r"\) (\d+)", result.stdout)
    if result.returncode != 0 or not match:
        raise UserError(
            f"{bindir / 'postgres'} does not run: {_last_line(result.stderr)}; "
            "delete the prefix and run `deribit-ts db up` to reinstall it"
        )
    return int(match.group(1))


def _from_path() -> Binaries | None:
    """A PostgreSQL on PATH whose share directory has TimescaleDB."""
    candidates = []
    if shutil.which("pg_config"):
        candidates.append(shutil.which("pg_config"))
    postgres = shutil.which("postgres")
    if postgres:
        candidates.append(str(Path(postgres).resolve().parent / "pg_config"))
    for pg_config in candidates:
        try:
            result = subprocess.run([pg_config, "--bindir", "--sharedir"], capture_output=True, text=True)
        except OSError:
            continue
        lines = result.stdout.split()
        if result.returncode != 0 or len(lines) != 2:
            continue
        bindir, sharedir = Path(lines[0]), Path(lines[1])
        if _has_server(bindir) and _has_timescaledb(sharedir):
            return Binaries(bindir, _major_of(bindir), "system")
    return None


# ---------------------------------------------------------------- processes, ports


def _pid_in_lock_file(lock_file: Path) -> int | None:
    try:
        first_line = lock_file.read_text().split("\n", 1)[0].strip()
    except (FileNotFoundError, PermissionError):
        return None
    return int(first_line) if first_line.isdigit() else None


def _port_in_lock_file(lock_file: Path) -> int | None:
    """postmaster.pid's fourth line is the port the server listens on."""
    try:
        lines = lock_file.read_text().split("\n")
    except (FileNotFoundError, PermissionError):
        return None
    return int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None


def _process_name(pid: int) -> str | None:
    """The command name (readable for any process, unlike its cwd)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def _process_cwd(pid: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Like PostgreSQL itself: a port left in TIME_WAIT by our own previous run is fine, a listener is not.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# ------------------------------------------------------- who the server runs as


@dataclass(frozen=True)
class _ServerOwner:
    """Who owns the data directory and runs initdb/pg_ctl: ourselves, or `deribit-ts` under root."""

    uid: int | None  # None: the current user, no switching
    gid: int | None

    @classmethod
    def for_current_user(cls) -> _ServerOwner:
        if os.geteuid() != 0:
            return cls(None, None)
        entry = _ensure_service_user()
        return cls(entry.pw_uid, entry.pw_gid)

    def run(
        self, cmd: list[str], input: str | None = None, *, pass_fds: tuple[int, ...] = (), die_with_parent: bool = False
    ) -> subprocess.CompletedProcess:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}
        # Runs in the child after the switch of user (a change of credentials clears the death signal).
        preexec = _die_with_parent_hook() if die_with_parent else None
        if self.uid is None:
            return subprocess.run(
                cmd, input=input, capture_output=True, text=True, env=env, pass_fds=pass_fds, preexec_fn=preexec
            )
        return subprocess.run(
            cmd,
            input=input,
            capture_output=True,
            text=True,
            env=env,
            cwd="/",
            user=self.uid,
            group=self.gid,
            extra_groups=[],
            pass_fds=pass_fds,
            preexec_fn=preexec,
        )

    def take(self, path: Path, mode: int) -> None:
        if self.uid is not None:
            os.chown(path, self.uid, self.gid)
        os.chmod(path, mode)

    def reach(self, *paths: Path) -> None:
        """Make sure the server's user can enter every directory leading to ``paths``."""
        if self.uid is None:
            return
        for path in paths:
            for directory in reversed(path.resolve().parents):
                if not _can_search(directory, self.uid, self.gid):
                    _grant_search(directory, self.uid)


_PR_SET_PDEATHSIG = 1


def _die_with_parent_hook() -> Callable[[], None]:
    """A preexec_fn: prctl(PR_SET_PDEATHSIG, SIGKILL), so the kernel kills the child when we die.

    Resolved here, in the parent: a child between fork and exec must not import anything.
    """
    import ctypes
    import signal

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # we died before the death signal was armed
            os._exit(1)

    return hook


def _ensure_service_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        pass
    _say(f"creating the system user {SERVICE_USER!r} to run the embedded PostgreSQL (it refuses to run as root)")
    # A group of that name may outlive its user (a user removed by hand): join it instead of failing.
    try:
        grp.getgrnam(SERVICE_USER)
        group_option = ["--gid", SERVICE_USER]
    except KeyError:
        group_option = ["--user-group"]
    result = subprocess.run(
        [
            "useradd",
            "--system",
            *group_option,
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            "--comment",
            "deribit-ts embedded PostgreSQL",
            SERVICE_USER,
        ],
        capture_output=True,
        text=True,
    )
    try:  # also when useradd failed because a concurrent deribit-ts process created the user first
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        raise UserError(
            f"cannot create the system user {SERVICE_USER!r}: {_last_line(result.stderr)}; "
            f"create it yourself or run deribit-ts as an ordinary user"
        ) from None


def _can_search(directory: Path, uid: int, gid: int) -> bool:
    info = directory.stat()
    if info.st_uid == uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid == gid:
        return bool(info.st_mode & stat.S_IXGRP)
    if info.st_mode & stat.S_IXOTH:
        return True
    return _acl_grants_search(directory, uid)


# POSIX ACL as the kernel stores it in the system.posix_acl_access attribute (linux/posix_acl_xattr.h).
_ACL_XATTR = "system.posix_acl_access"
_ACL_VERSION = 2
_ACL_USER_OBJ, _ACL_USER, _ACL_GROUP_OBJ = 0x01, 0x02, 0x04
_ACL_GROUP, _ACL_MASK, _ACL_OTHER = 0x08, 0x10, 0x20
_ACL_UNDEFINED_ID = 0xFFFFFFFF
_ACL_ENTRY = struct.Struct("<HHI")


def _read_acl(directory: Path) -> dict[tuple[int, int], int]:
    """{(tag, id): permission bits}; built from the mode bits when the directory has no ACL yet."""
    try:
        raw = os.getxattr(directory, _ACL_XATTR)
    except OSError as exc:
        if exc.errno not in (errno.ENODATA, errno.EOPNOTSUPP):
            raise
        mode = directory.stat().st_mode
        return {
            (_ACL_USER_OBJ, _ACL_UNDEFINED_ID): (mode >> 6) & 7,
            (_ACL_GROUP_OBJ, _ACL_UNDEFINED_ID): (mode >> 3) & 7,
            (_ACL_OTHER, _ACL_UNDEFINED_ID): mode & 7,
        }
    entries = (_ACL_ENTRY.unpack_from(raw, offset) for offset in range(4, len(raw), _ACL_ENTRY.size))
    return {(tag, ident): perm for tag, perm, ident in entries}


def _acl_grants_search(directory: Path, uid: int) -> bool:
    try:
        acl = _read_acl(directory)
    except OSError:
        return False
    mask = acl.get((_ACL_MASK, _ACL_UNDEFINED_ID), 7)
    return bool(acl.get((_ACL_USER, uid), 0) & mask & 1)


def _grant_search(directory: Path, uid: int) -> None:
    try:
        acl = _read_acl(directory)
        acl[(_ACL_USER, uid)] = acl.get((_ACL_USER, uid), 0) | 1
        # The mask caps named entries and the owning group; recompute it as setfacl does (their union).
        acl[(_ACL_MASK, _ACL_UNDEFINED_ID)] = _union_of_group_class(acl)
        raw = struct.pack("<I", _ACL_VERSION) + b"".join(
            _ACL_ENTRY.pack(tag, perm, ident) for (tag, ident), perm in sorted(acl.items())
        )
        os.setxattr(directory, _ACL_XATTR, raw)
        _say(f"granted the {SERVICE_USER!r} user search permission on {directory} (POSIX ACL)")
    except OSError:
        os.chmod(directory, directory.stat().st_mode | stat.S_IXOTH)
        _say(f"{directory} has no ACL support: made it searchable (o+x) so {SERVICE_USER!r} can reach the cluster")


def _union_of_group_class(acl: dict[tuple[int, int], int]) -> int:
    group_class = (_ACL_USER, _ACL_GROUP_OBJ, _ACL_GROUP)
    union = 0
    for (tag, _ident), perm in acl.items():
        if tag in group_class:
            union |= perm
    return union


# ------------------------------------------------------------------- messages


def _say(message: str) -> None:
    print(f"deribit-ts: {message}", file=sys.stderr)


def _last_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _last_server_error(log_path: Path, offset: int) -> str | None:
    try:
        with open(log_path, errors="replace") as log:
            log.seek(offset)
            lines = log.read().splitlines()[-50:]
    except OSError:
        return None
    errors = [line for line in lines if re.search(r"\b(FATAL|PANIC|ERROR):", line)]
    return errors[-1].strip() if errors else None
