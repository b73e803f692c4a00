"""deribit-ts: a complete, resumable history of Deribit market data in TimescaleDB."""

__version__ = "0.1.0"
