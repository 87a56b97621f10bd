"""monitoring/runbooks.py: the shipped rules carry the default runbook base, a new base
rewrites every runbook_url and nothing else, and a rule file it cannot handle is refused."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.rules import ALERTS, RULES, RUNBOOK_BASE

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "monitoring" / "runbooks.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("runbooks", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


runbooks = load()


def test_runbooks_shipped_rules_use_the_default_base() -> None:
    text = RULES.read_text(encoding="utf-8")
    assert runbooks.DEFAULT_BASE + "#" == RUNBOOK_BASE
    assert runbooks.render(text, runbooks.DEFAULT_BASE) == text


def test_runbooks_new_base_changes_only_the_runbook_lines() -> None:
    text = RULES.read_text(encoding="utf-8")
    rendered = runbooks.render(text, "https://wiki.example.com/ops/voxmon#")
    urls = re.findall(r"runbook_url: (\S+)", rendered)
    assert urls[:2] == ["https://wiki.example.com/ops/voxmon#voicepipelinehighfailurerate"] * 2
    assert sorted(set(urls)) == sorted(
        f"https://wiki.example.com/ops/voxmon#{alert.lower()}" for alert in ALERTS
    )
    changed = [
        (old, new)
        for old, new in zip(text.splitlines(), rendered.splitlines(), strict=True)
        if old != new
    ]
    assert len(changed) == len(ALERTS) + 1  # HighFailureRate twice
    assert all("runbook_url:" in old and "runbook_url:" in new for old, new in changed)


def test_runbooks_refuses_an_alert_without_runbook() -> None:
    text = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n"
    with pytest.raises(ValueError, match="alerts without a runbook_url annotation: A"):
        runbooks.render(text, "https://x")


def test_runbooks_command_line_writes_the_rendered_file(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--base", "https://runbooks.internal/voxmon"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "runbook_url: https://runbooks.internal/voxmon#voxmondown\n" in result.stdout
    broken = tmp_path / "rules.yml"
    broken.write_text("      - alert: B\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--rules", str(broken), "--write"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (result.returncode, result.stderr) == (
        2, "runbooks: alerts without a runbook_url annotation: B\n",
    )  # fmt: skip
    assert broken.read_text(encoding="utf-8") == "      - alert: B\n"
