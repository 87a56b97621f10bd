"""The PostgreSQL backend: every SQL statement voxmon runs on PostgreSQL (psycopg 3)."""
