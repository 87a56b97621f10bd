"""``voxmon rollup`` and ``voxmon cleanup`` on a database file, with and without the daemon."""

from __future__ import annotations

import asyncio
import os
import pty
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from exporter.cli import main
from exporter.model import Event
from exporter.storage.sqlite import snapshots as snap
from exporter.timestamps import datetime_to_ms
from rollup import guard
from tests.conftest import make_event
from tests.scrape import samples
from tests.tools import open_store


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
    assert "hourly: 2 window(s)" in captured.out
    assert "2/2" not in captured.err and "\r" not in captured.err  # no bar: not a terminal
    assert (
        "voxmon: skipped hourly 2026-11-28T06:00:00.000Z (1 window): before the first event"
        " (history starts 2026-11-28T07:00:00.000Z)" in captured.err
    )
    assert [k for k in snapshot_keys(tmp_path / "voxmon.db") if k[0] == "hourly"] == [
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
    ancient = datetime(2020, 1, 1, tzinfo=UTC)
    conn = open_store(db)
    row = snap.SnapshotRow("hourly", datetime_to_ms(ancient), "", 0, 0, 0, 0.0, b"")
    conn.write(lambda c: c.snapshots.replace_snapshots("hourly", row.period_start_ms, [row]))
    conn.close()
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


async def test_cli_backfill_after_retention_changes_nothing_and_says_why(
    start_app: Any, clock: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's own recovery step after the raw events of an hour were pruned: the
    hour and its day stay exactly as they were, the CLI names the skipped windows and
    exits 1 because nothing could be computed."""
    db = str(tmp_path / "voxmon.db")
    clock.set(datetime.now(UTC) - timedelta(hours=3))
    client = await start_app()
    hour = (clock.now() - timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    notes = [make_event(timestamp=(hour + timedelta(minutes=i)).isoformat(), artifact_id=f"n{i}")
             for i in range(12)]  # fmt: skip
    assert (await client.post("/v1/events", json=notes)).status == 200
    await client.close()
    at = hour.isoformat()
    assert await asyncio.to_thread(main, ["rollup", "hourly", "--at", at, "--db", db]) == 0
    before = snapshot_rows(tmp_path / "voxmon.db", hour)
    env = {"VOXMON_EVENT_RETENTION_HOURS": "1"}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        assert await asyncio.to_thread(main, ["cleanup", "--db", db]) == 0
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["rollup", "hourly", "--at", at, "--db", db]) == 1
    err = capsys.readouterr().err
    assert (
        f"skipped hourly {hour.strftime('%Y-%m-%dT%H')}:00:00.000Z (1 window): its raw events"
        " were pruned by event retention" in err
    )
    assert "hourly: nothing rolled up" in err
    assert snapshot_rows(tmp_path / "voxmon.db", hour) == before


def snapshot_rows(db: Path, hour: datetime) -> list[tuple[Any, ...]]:
    """The rows of ``hour`` and of its day (the cleanup rolls up the quiet hours after it
    before it prunes them)."""
    starts = (datetime_to_ms(hour), datetime_to_ms(hour.replace(hour=0)))
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT * FROM snapshots WHERE (period, period_start_ms) IN"
            " (VALUES ('hourly', ?), ('daily', ?)) ORDER BY 1, 2, 3",
            starts,
        ).fetchall()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--at", "NOW"], "the window is still open"),
        (["--at", "2027-12-03T10:00:00Z"], "the window is in the future"),
        (["--from", "2020-01-01T00:00:00Z", "--to", "2026-12-01T00:00:00Z"],
         "before the first event"),
    ],
)  # fmt: skip
def test_cli_rollup_never_writes_open_future_or_prehistoric_windows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    db = tmp_path / "voxmon.db"
    now = datetime.now(UTC)
    conn = open_store(db)
    first = Event("e1", "artifact_received", datetime_to_ms(now), artifact_id="a1")
    conn.write(lambda c: c.events.insert([first], 0))
    conn.close()
    args = [now.isoformat() if a == "NOW" else a for a in args]
    assert main(["rollup", "hourly", *args, "--db", str(db)]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 2  # one line per refused range + summary
    assert snapshot_keys(db) == []


async def test_cli_runs_show_in_the_running_daemons_status_and_metrics(
    start_app: Any, clock: Any, tmp_path: Path
) -> None:
    """Fixing a stale rollup by hand clears VoxmonRollupStale: the daemon reads run
    records from storage, whoever ran the job."""
    clock.set(datetime.now(UTC))
    client = await start_app()
    hour = clock.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    await client.post("/v1/events", json=[make_event(timestamp=hour.isoformat())])
    db = str(tmp_path / "voxmon.db")
    assert (
        await asyncio.to_thread(main, ["rollup", "hourly", "--at", hour.isoformat(), "--db", db])
        == 0
    )
    status = await (await client.get("/v1/rollups")).json()
    run = status["jobs"][0]["last_run"]
    assert (run["job"], run["trigger"], run["result"], run["rows_written"]) == (
        "rollup-hourly", "cli", "success", 2,
    )  # fmt: skip
    found = samples(await (await client.get("/metrics")).text(), "voxmon_rollup_")
    assert found[("voxmon_rollup_runs_total", (("job", "rollup-hourly"),
                                                 ("result", "success")))] == 1.0  # fmt: skip
    last = found[("voxmon_rollup_last_success_timestamp_seconds",
                    (("job", "rollup-hourly"),))]  # fmt: skip
    assert abs(last - clock.now().timestamp()) < 60


def test_cli_rollup_range_from_year_1_to_9999_is_refused_in_three_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The widest range the CLI accepts names its three refused ranges at once instead of
    checking 87 million hours one by one (minutes and gigabytes before)."""
    db = tmp_path / "voxmon.db"
    now = datetime.now(UTC)
    conn = open_store(db)
    first = Event("e1", "artifact_received", datetime_to_ms(now), artifact_id="a1")
    conn.write(lambda c: c.events.insert([first], 0))
    conn.close()
    checked: list[tuple[Any, ...]] = []
    check = guard.check

    def counted(*args: Any) -> None:
        checked.append(args)
        assert len(checked) < 100, "every window is checked one by one"
        check(*args)

    monkeypatch.setattr(guard, "check", counted)
    args = ["--from", "0001-01-01T00:00:00Z", "--to", "9999-12-31T23:59:59.999Z"]
    assert main(["rollup", "hourly", *args, "--db", str(db)]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert [line.split("): ")[-1].split(" (")[0] for line in lines] == [
        "before the first event",
        "the window is still open",
        "the window is in the future",
        "hourly: nothing rolled up",
    ]
    assert lines[0].startswith("voxmon: skipped hourly 0001-01-01T00:00:00.000Z..")
    assert "..9999-12-31T23:00:00.000Z (" in lines[2]
    assert snapshot_keys(db) == []


@pytest.mark.parametrize("command", [["rollup", "hourly", "--at", "2026-11-28T07:00:00Z"],
                                     ["cleanup"], ["cleanup", "--dry-run"]])  # fmt: skip
def test_cli_jobs_refuse_a_missing_unopenable_or_corrupt_database_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    """A mistyped --db used to create an empty database and report "cleanup deleted:
    events=0"; a directory, a missing directory or a file that is no database ended in a
    traceback. Each is one line and exit code 2, and nothing is created."""
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database, " * 1000)
    cases = {
        tmp_path / "typo.db": "does not exist",
        tmp_path / "missing" / "voxmon.db": "does not exist",
        tmp_path: "cannot be used",
        junk: "is corrupt",
    }
    for db, problem in cases.items():
        assert main([*command, "--db", str(db)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"voxmon: database {db} ") and problem in err
        assert err.count("\n") == 1 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.db"]


def test_cli_cleanup_writes_the_daily_rows_before_pruning_the_hours_they_need(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A database whose daemon was down for ten days (nothing rolled up since): a manual
    cleanup pruned the hourly rows of days that never got their daily row, so those days
    were gone from the 90-day history. The cleanup now writes them first."""
    db = tmp_path / "voxmon.db"
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=9)
    notes = [Event(f"e{i}", "artifact_received", datetime_to_ms(day) + i * 3_600_000,
                   artifact_id=f"a{i}", org_id="org-a") for i in range(24)]  # fmt: skip
    conn = open_store(db)
    conn.write(lambda c: c.events.insert(notes, datetime_to_ms(day)))
    conn.close()
    assert main(["cleanup", "--db", str(db)]) == 0
    assert capsys.readouterr().out == (
        "cleanup deleted: events=24, artifacts=0, hourly_snapshots=72, daily_snapshots=0\n"
    )
    conn = open_store(db)
    daily = conn.snapshots.snapshot_rows("daily", datetime_to_ms(day), datetime_to_ms(day) + 1)
    hourly = conn.snapshots.snapshot_rows("hourly", 0, datetime_to_ms(day + timedelta(days=2)))
    conn.close()
    assert [(row.scope, row.artifacts_received) for row in daily] == [("", 24), ("org-a", 24)]
    assert hourly == []  # pruned, as retention says


def _two_past_hours(db: Path) -> list[str]:
    """A database with an event in each of the two closed hours before the current one;
    returns ``--from``/``--to`` covering both."""
    top = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    conn = open_store(db)
    events = [Event(f"e{h}", "artifact_received", datetime_to_ms(top - timedelta(hours=h)),
                    artifact_id=f"a{h}") for h in (2, 1)]  # fmt: skip
    conn.write(lambda c: c.events.insert(events, 0))
    conn.close()
    return ["--from", (top - timedelta(hours=2)).isoformat(), "--to", top.isoformat()]


def test_cli_progress_bar_only_on_a_terminal(tmp_path: Path) -> None:
    """Piped stderr (a log file, CI) gets no ``\r`` redraws; a terminal gets the bar."""
    db = tmp_path / "voxmon.db"
    command = [sys.executable, "-m", "exporter", "rollup", "hourly", *_two_past_hours(db),
               "--db", str(db)]  # fmt: skip
    piped = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.startswith("hourly: 2 window(s)")
    assert "\r" not in piped.stderr and "[" not in piped.stderr
    leader, follower = pty.openpty()
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=follower) as tty:
        os.close(follower)
        assert tty.wait(timeout=60) == 0
        drawn = os.read(leader, 65536).decode()
    os.close(leader)
    half, full = f"[{'#' * 15}{'.' * 15}] 1/2", f"[{'#' * 30}] 2/2"
    assert drawn.startswith(f"\rhourly {half}\rhourly {full}\r\n")  # the tty maps \n to \r\n
