"""All of voxmon's SQL: schema, migrations, events, live-state persistence."""
