"""The SQLite backend: every SQL statement voxmon runs on SQLite."""
