"""``voxmon rollup`` and ``voxmon cleanup`` on a database file, with and without the daemon."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from exporter.cli import main
from tests.conftest import make_event


def snapshot_keys(db: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT period, strftime('%Y-%m-%dT%H', period_start_ms / 1000, 'unixepoch'), scope"
            " FROM snapshots ORDER BY 1, 2, 3"
        )
        return list(rows)


async def test_cli_rollup_at_and_range_while_daemon_runs(
    start_app: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = await start_app()
    await client.post("/v1/events", json=[
        make_event(timestamp="2026-11-28T07:15:00Z", org_id="org-a"),
        make_event(timestamp="2026-11-28T08:45:00Z", org_id="org-b"),
    ])  # fmt: skip
    db = str(tmp_path / "voxmon.db")
    code = await asyncio.to_thread(main, ["rollup", "hourly", "--at", "2026-11-28T07:59:59Z",
                                         "--db", db])  # fmt: skip
    assert code == 0
    assert snapshot_keys(tmp_path / "voxmon.db") == [
        ("hourly", "2026-11-28T07", ""), ("hourly", "2026-11-28T07", "org-a"),
    ]  # fmt: skip
    code = await asyncio.to_thread(main, ["rollup", "hourly", "--from", "2026-11-28T06:30:00Z",
                                         "--to", "2026-11-28T09:00:00Z", "--db", db])  # fmt: skip
    assert code == 0
    captured = capsys.readouterr()
    assert "hourly: 3 window(s)" in captured.out
    assert "3/3" in captured.err  # the progress bar
    assert [k for k in snapshot_keys(tmp_path / "voxmon.db") if k[0] == "hourly"] == [
        ("hourly", "2026-11-28T06", ""),
        ("hourly", "2026-11-28T07", ""), ("hourly", "2026-11-28T07", "org-a"),
        ("hourly", "2026-11-28T08", ""), ("hourly", "2026-11-28T08", "org-b"),
    ]  # fmt: skip
    code = await asyncio.to_thread(
        main, ["rollup", "daily", "--at", "1795824000000", "--db", db]
    )  # fmt: skip (2026-11-28T00:00Z)
    assert code == 0
    assert [k for k in snapshot_keys(tmp_path / "voxmon.db") if k[0] == "daily"] == [
        ("daily", "2026-11-28T00", ""), ("daily", "2026-11-28T00", "org-a"),
        ("daily", "2026-11-28T00", "org-b"),
    ]  # fmt: skip


def test_cli_rollup_rejects_bad_range(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "voxmon.db")
    args = ["rollup", "hourly", "--from", "2026-11-28T09:00:00Z", "--to", "2026-11-28T08:00:00Z"]
    assert main([*args, "--db", db]) == 2
    assert "--to must be after --from" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["rollup", "hourly", "--at", "yesterday", "--db", db])


def test_cli_cleanup_dry_run_then_for_real(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "voxmon.db"
    main(["rollup", "hourly", "--at", "2020-01-01T00:00:00Z", "--db", str(db)])  # ancient row
    assert main(["cleanup", "--dry-run", "--db", str(db)]) == 0
    assert (
        "would delete: events=0, artifacts=0, hourly_snapshots=1, daily_snapshots=0"
        in capsys.readouterr().out
    )
    assert len(snapshot_keys(db)) == 1
    assert main(["cleanup", "--db", str(db)]) == 0
    assert (
        "deleted: events=0, artifacts=0, hourly_snapshots=1, daily_snapshots=0"
        in capsys.readouterr().out
    )
    assert snapshot_keys(db) == []
