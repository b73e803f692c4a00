"""Locate the SQL that ships with the package.

In a wheel, ``sql/`` and ``migrations/`` are installed as ``deribit_ts/_sql`` and
``deribit_ts/_migrations``; in an editable install or a checkout they sit at the
repository root beside the package.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _locate(installed: str, in_checkout: str) -> Path:
    for candidate in (_PACKAGE / installed, _PACKAGE.parent / in_checkout):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"deribit-ts is installed without its {in_checkout}/ folder")


def migrations_dir() -> Path:
    return _locate("_migrations", "migrations")


def sql_dir() -> Path:
    return _locate("_sql", "sql")


def install_script() -> Path:
    """scripts/install-timescaledb.sh, which also ships in the wheel."""
    return _locate("_scripts", "scripts") / "install-timescaledb.sh"
