"""deploy/: the systemd units are valid (systemd-analyze verify) and say what the README promises."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import run_cli

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
CLI = str(Path(sys.executable).parent / "deribit-ts")


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read(DEPLOY / name)
    return parser


def test_the_collector_restarts_forever_and_stops_gracefully():
    collect = unit("deribit-ts-collect.service")
    # A long exchange outage must not exhaust a start limit: no limit, a pause between attempts.
    assert collect["Unit"]["StartLimitIntervalSec"] == "0"
    assert collect["Service"]["Restart"] == "always"
    assert int(collect["Service"]["RestartSec"]) >= 5
    assert collect["Service"]["KillSignal"] == "SIGTERM"
    # The collector's sd_notify: READY once running, WATCHDOG=1 with each heartbeat (every 5 s).
    assert (collect["Service"]["Type"], collect["Service"]["NotifyAccess"]) == ("notify", "main")
    assert int(collect["Service"]["WatchdogSec"]) >= 4 * 5
    assert collect["Service"]["TimeoutStartSec"] == "infinity"  # READY waits for the exchange
    assert collect["Service"]["ExecStart"].split()[1:] == ["collect", "$DERIBIT_TS_COLLECT_ARGS"]
    assert collect["Service"]["EnvironmentFile"] == "/etc/deribit-ts/deribit-ts.env"


def test_the_timer_starts_the_daily_backup():
    timer = unit("deribit-ts-backup.timer")
    assert timer["Timer"]["OnCalendar"].startswith("*-*-* ")
    assert timer["Timer"]["Persistent"] == "true"
    service = unit("deribit-ts-backup.service")
    assert service["Service"]["Type"] == "oneshot"
    assert service["Service"]["ExecStart"].split()[1:] == ["backup"]


def test_the_environment_example_sets_only_settings_the_cli_reads():
    settings = {}
    for line in (DEPLOY / "deribit-ts.env.example").read_text().splitlines():
        line = line.strip().lstrip("#")
        if "=" in line and line.split("=", 1)[0].isupper():
            key, value = line.split("=", 1)
            settings[key] = value
    assert set(settings) >= {
        "DERIBIT_TS_HOME",
        "DERIBIT_TS_DSN",
        "DERIBIT_TS_BACKUP_DIR",
        "DERIBIT_TS_BACKUP_KEEP",
        "DERIBIT_TS_COLLECT_CURRENCY",
        "DERIBIT_TS_COLLECT_ARGS",
    }
    assert all(value for value in settings.values()), "an empty value is a usage error: leave the line out"
    backup_help = run_cli("backup", "--help", env={"COLUMNS": "300"}).stdout
    assert "DERIBIT_TS_BACKUP_DIR" in backup_help and "DERIBIT_TS_BACKUP_KEEP" in backup_help
    collect_help = run_cli("collect", "--help", env={"COLUMNS": "300"}).stdout
    for name in ("DERIBIT_TS_COLLECT_CURRENCY", "DERIBIT_TS_COLLECT_KINDS", "DERIBIT_TS_HEALTHCHECK_URL"):
        assert name in collect_help, name


def test_every_command_the_units_run_exists():
    commands = {("db", "up"), ("db", "down"), ("backup",), ("collect",)}
    for command in commands:
        result = run_cli(*command, "--help")
        assert result.returncode == 0, (command, result.stderr)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path):
    """The units as installed, with the paths pointed at this checkout (verify checks that executables exist)."""
    env_file = DEPLOY / "deribit-ts.env.example"
    names = sorted(p.name for p in DEPLOY.iterdir() if p.suffix in (".service", ".timer"))
    for name in names:
        text = (DEPLOY / name).read_text().replace("/opt/deribit-ts/.venv/bin/deribit-ts", CLI)
        (tmp_path / name).write_text(text.replace("/etc/deribit-ts/deribit-ts.env", str(env_file)))
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *names], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "Unknown" not in result.stderr and "ignoring" not in result.stderr, result.stderr
