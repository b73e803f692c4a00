"""The Community edition: the continuous aggregates (deribit.candles_*) and everything else in schema deribit carry
the same COMMENTs as on Apache."""

from __future__ import annotations

import psycopg
import pytest

pytestmark = pytest.mark.tsl

CAGGS = "SELECT count(*) FROM timescaledb_information.continuous_aggregates WHERE view_schema = 'deribit'"


def test_every_relation_and_column_of_schema_deribit_has_a_comment_on_tsl(tsl_migrated):
    from test_comments import undocumented

    with psycopg.connect(tsl_migrated) as conn:
        assert conn.execute(CAGGS).fetchone()[0] == 4
        assert undocumented(conn) == [], "add their COMMENTs to sql/90_comments.sql"
