"""Ingest: fetch from the exchange, load into the hypertables. One module per dataset."""
