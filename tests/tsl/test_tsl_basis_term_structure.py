"""The kept basis term structure on the Community edition (the hourly bars from the continuous aggregate): the
same planted market, re-load and refreshes as on Apache (tests/test_basis_term_structure_kept.py)."""

from __future__ import annotations

import pytest
from test_basis_term_structure_kept import scenario

pytestmark = pytest.mark.tsl


def test_the_kept_term_structure_equals_the_one_computed_on_read(tsl_migrated) -> None:
    scenario(tsl_migrated)
