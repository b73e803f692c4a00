"""Type check the package with mypy and fail on any error not in the recorded baseline.

The package predates type checking: its known errors are listed in .ci/mypy-baseline.txt (file, error code and
message, without line numbers, so edits elsewhere in a file do not disturb them). An error not in the list fails
the check, so no new one can be added; fixing one is welcome: `--update` rewrites the list to what remains.

    .venv/bin/python .ci/mypy_check.py            # what CI runs
    .venv/bin/python .ci/mypy_check.py --update   # after fixing errors: shrink the baseline
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / ".ci" / "mypy-baseline.txt"
# "path:line: error: message  [code]"; notes and summary lines are not errors.
ERROR = re.compile(r"^(?P<path>[^:]+):(?P<line>\d+)(?::\d+)?: error: (?P<message>.*?)(?:  \[(?P<code>[\w-]+)\])?$")


def run_mypy() -> tuple[list[tuple[str, str]], int]:
    """(key, the full line) per error, and mypy's exit status."""
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-pretty", "--no-error-summary", "--show-error-codes"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    errors = []
    for line in result.stdout.splitlines():
        match = ERROR.match(line)
        if match:
            key = f"{match['path']}: [{match['code'] or 'misc'}] {match['message']}"
            errors.append((key, line))
    if result.returncode not in (0, 1) or (result.returncode == 1 and not errors):
        sys.stderr.write(result.stdout + result.stderr)
        sys.exit(f"mypy_check: mypy did not run (exit {result.returncode})")
    return errors, result.returncode


def main(argv: list[str]) -> int:
    errors, _ = run_mypy()
    found = Counter(key for key, _ in errors)
    if "--update" in argv:
        BASELINE.write_text("".join(f"{key}\n" for key in sorted(found.elements())))
        print(f"mypy_check: baseline rewritten: {sum(found.values())} known error(s)")
        return 0
    known = Counter(line for line in BASELINE.read_text().splitlines() if line.strip())
    new = found - known
    if new:
        lines = [line for key, line in errors if key in new]
        print("\n".join(lines))
        print(
            f"mypy_check: {sum(new.values())} new type error(s) (above); fix them "
            f"(the {sum(known.values())} recorded in {BASELINE.relative_to(ROOT)} are the only ones allowed)",
            file=sys.stderr,
        )
        return 1
    fixed = known - found
    note = (
        f"; {sum(fixed.values())} recorded one(s) fixed: run it with --update to shrink the baseline" if fixed else ""
    )
    print(f"mypy_check: no new type errors ({sum(found.values())} known){note}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
