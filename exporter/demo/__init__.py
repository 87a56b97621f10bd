"""``voxmon demo``: realistic pipeline traffic for a voxmon, sent through the client library.
Not part of the daemon's core: only the CLI imports it."""

from __future__ import annotations

from exporter.demo.command import add_parser, command

__all__ = ["add_parser", "command"]
