"""Fencing of the collector's trade writes on the Community edition, where deribit.trades is a hypertable on the
columnstore: the leader-epoch statement trigger fires for the hypertable as on Apache."""

from __future__ import annotations

import pytest
from test_collect_trades import fencing_scenario

pytestmark = pytest.mark.tsl


def test_trade_writes_of_an_epoch_that_is_over_are_refused(tsl_migrated, tsl_connect):
    with tsl_connect() as conn:
        fencing_scenario(conn)
