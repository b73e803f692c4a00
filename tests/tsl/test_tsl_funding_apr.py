"""The kept funding means on the Community edition (the funding history compressed into the columnstore): the same
planted history, re-load and refreshes as on Apache (tests/test_funding_apr_kept.py)."""

from __future__ import annotations

import pytest
from test_funding_apr_kept import scenario

pytestmark = pytest.mark.tsl


def test_the_kept_funding_means_equal_the_ones_computed_on_read(tsl_migrated) -> None:
    scenario(tsl_migrated)
