"""The documentation in docs/ and the README: every relative link resolves, the event
catalog table equals the catalog, and every alert is listed in docs/alerting.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from exporter.catalog import EVENT_TYPES
from tests.rules import ALERTS

ROOT = Path(__file__).resolve().parent.parent
PAGES = [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_docs_pages_exist() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in PAGES}
    assert {
        "docs/README.md", "docs/event-contract.md", "docs/configuration.md",
        "docs/operating.md", "docs/alerting.md", "docs/runbooks.md",
        "docs/decisions/runbook-urls.md",
    } <= names  # fmt: skip


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_docs_relative_links_resolve(page: Path) -> None:
    targets = [t for t in LINK.findall(page.read_text(encoding="utf-8")) if "://" not in t]
    broken = [t for t in targets if not (page.parent / t).exists()]
    assert broken == []


def test_docs_event_catalog_table_is_the_catalog() -> None:
    text = (ROOT / "docs" / "event-contract.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)` \| (\S+) \| (\w+) \| (yes|no) \|$", text, re.MULTILINE)
    expected = [
        (t.name, t.stage or "—", t.kind.value, "yes" if t.needs_artifact else "no")
        for t in EVENT_TYPES.values()
    ]
    assert rows == expected


def test_docs_alerting_lists_every_alert() -> None:
    text = (ROOT / "docs" / "alerting.md").read_text(encoding="utf-8")
    listed = re.findall(r"^\| `(\w+)` \| (?:warning|critical)", text, re.MULTILINE)
    assert listed == ALERTS
