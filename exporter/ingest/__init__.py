"""The ingest path: request bodies in, group commits out."""
