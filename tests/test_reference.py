"""The generated configuration reference: every setting documented in its declaration, the
committed docs/configuration.md current, and what it says about variables and flags true."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from exporter import reference
from exporter.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "docs" / "configuration.md"


def test_reference_every_setting_has_help_text() -> None:
    undocumented = [entry.name for entry in reference.entries() if not entry.help]
    assert undocumented == []


def test_reference_committed_file_is_current() -> None:
    expected = reference.render()
    assert COMMITTED.read_text(encoding="utf-8") == expected, (
        "docs/configuration.md is stale: python -m exporter.reference > docs/configuration.md"
    )


def test_reference_field_docs_finds_missing_docstrings() -> None:
    @dataclass
    class Sample:
        documented: int = 1
        """Has help."""
        bare: str = "x"
        last: int = 2
        """Spread
        over two lines."""

    assert reference.field_docs(Sample) == {
        "documented": "Has help.",
        "last": "Spread over two lines.",
    }


def test_reference_entry_for_port_and_the_file_only_tables() -> None:
    by_name = {entry.name: entry for entry in reference.entries()}
    port = by_name["port"]
    assert (port.kind, port.default, port.variable, port.flags) == (
        "integer", "`9473`", "VOXMON_PORT", ("--port",),
    )  # fmt: skip
    assert (by_name["db_path"].flags, by_name["db_path"].default) == (("--db",), '`"voxmon.db"`')
    assert (by_name["crons"].variable, by_name["tokens"].variable) == (None, None)
    assert len(by_name) == len(Settings.__dataclass_fields__)
    text = reference.render()
    assert "### max_event_cost_usd\n" in text
    assert "| `cleanup-events` | `0 5 * * 0` |" in text


@pytest.mark.parametrize(
    "entry", [e for e in reference.entries() if e.variable], ids=lambda e: e.name
)
def test_reference_each_documented_variable_is_accepted(
    entry: reference.Entry, tmp_path: Path
) -> None:
    """Setting each documented variable to its documented default loads that value."""
    if entry.default == "none":
        value = "none" if entry.name == "auth" else ""
    else:
        value = entry.default.strip("`").strip('"')
    empty = tmp_path / "voxmon.toml"
    empty.write_text("", encoding="utf-8")
    settings = Settings.load(empty, {entry.variable or "": value})
    loaded = getattr(settings, entry.name)
    assert (str(loaded).lower() if isinstance(loaded, bool) else str(loaded)) == value
