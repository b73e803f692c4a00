"""Database access: connections, the embedded cluster, migrations."""
