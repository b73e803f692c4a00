"""The wheel carries the SQL core, so `pip install deribit-ts` works outside a checkout."""

import subprocess
import sys
import zipfile
from pathlib import Path

from deribit_ts.resources import migrations_dir, sql_dir

REPO = Path(__file__).resolve().parent.parent


def test_wheel_ships_migrations_sql_and_the_installer(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("deribit_ts-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"deribit_ts/_migrations/{p.name}" for p in migrations_dir().glob("*.sql")} <= names
    assert {f"deribit_ts/_sql/{p.name}" for p in sql_dir().glob("*.sql")} <= names
    assert "deribit_ts/_scripts/install-timescaledb.sh" in names
    assert any(n.endswith("entry_points.txt") for n in names)
