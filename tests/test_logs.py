"""Log output: text lines stamped in UTC whatever the local time zone, one JSON object per
line with ``--log-format json`` (traceback in ``exc``), and the access log only when asked
for; the daemon's own lines checked in real processes."""

from __future__ import annotations

import json
import logging
import re
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from exporter.logs import JsonFormatter, TextFormatter, utc_iso
from tests.tools import DEADLINE_S, free_port, http, serving, voxmon, wait_listening

ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def record(exc: bool = False) -> logging.LogRecord:
    info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            info = sys.exc_info()
    made = logging.LogRecord("voxmon.test", logging.ERROR, __file__, 1, "job %s failed", ("x",),
                             info)  # fmt: skip
    made.created = 1795850100.5  # 2026-11-28T07:15:00.500Z
    return made


def test_logs_utc_iso_is_utc_with_milliseconds_and_z() -> None:
    assert utc_iso(1795850100.5) == "2026-11-28T07:15:00.500Z"
    assert utc_iso(0) == "1970-01-01T00:00:00.000Z"


def test_logs_text_line() -> None:
    assert TextFormatter().format(record()) == (
        "2026-11-28T07:15:00.500Z ERROR voxmon.test: job x failed"
    )


def test_logs_json_line_fields_and_exc_only_when_present() -> None:
    assert json.loads(JsonFormatter().format(record())) == {
        "ts": "2026-11-28T07:15:00.500Z",
        "level": "ERROR",
        "logger": "voxmon.test",
        "message": "job x failed",
    }
    line = JsonFormatter().format(record(exc=True))
    assert "\n" not in line
    fields = json.loads(line)
    assert sorted(fields) == ["exc", "level", "logger", "message", "ts"]
    assert fields["exc"].startswith("Traceback (most recent call last):\n")
    assert fields["exc"].endswith("ValueError: boom")


def test_logs_text_timestamps_are_utc_in_any_time_zone(tmp_path: Path) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    port = str(free_port())  # check-config binds it: the default port may be taken here
    done = voxmon(tmp_path, "check-config", "--port", port, VOXMON_NOPE="1", TZ="Asia/Kolkata")
    after = datetime.now(UTC) + timedelta(seconds=1)
    assert done.returncode == 0, done.stderr
    stamp, level, logger, _ = done.stderr.split(" ", 3)
    assert ISO_Z.fullmatch(stamp), stamp
    assert (level, logger) == ("WARNING", "exporter.cli:")
    assert before <= datetime.fromisoformat(stamp) <= after  # +05:30 would be far outside


def test_logs_json_format_from_the_command_line(tmp_path: Path) -> None:
    port = str(free_port())
    done = voxmon(tmp_path, "check-config", "--log-format", "json", "--port", port, VOXMON_NOPE="1")
    assert done.returncode == 0, done.stderr
    (line,) = done.stderr.splitlines()
    fields = json.loads(line)
    assert ISO_Z.fullmatch(fields.pop("ts"))
    assert fields["message"].startswith("ignoring VOXMON_NOPE: not a voxmon setting; voxmon reads")
    assert (fields["level"], fields["logger"]) == ("WARNING", "exporter.cli")


def served_lines(tmp_path: Path, *options: str) -> list[dict[str, str]]:
    """JSON log lines of a daemon that answered ``GET /healthz`` twice, then stopped."""
    db, port = tmp_path / "voxmon.db", free_port()
    log = tmp_path / "voxmon.log"
    with serving(db, port, "--log-format", "json", *options, log=log) as process:
        wait_listening(process, log, port)
        for _ in range(2):
            assert http("GET", f"http://127.0.0.1:{port}/healthz")[0] == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=DEADLINE_S) == 0
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.mark.parametrize("option", ["--access-log", None])
def test_logs_access_log_only_when_asked(tmp_path: Path, option: str | None) -> None:
    lines = served_lines(tmp_path, *([option] if option else []))
    access = [line for line in lines if line["logger"] == "aiohttp.access"]
    if option is None:
        assert access == []
        return
    assert len(access) == 2
    assert re.fullmatch(
        r'127\.0\.0\.1 "GET /healthz HTTP/1\.1" 200 \d+ \d+\.\d+ "Python-urllib/3\.\d+"',
        access[0]["message"],
    ), access[0]
    assert access[0]["level"] == "INFO"


def test_logs_daemon_lines_are_json_and_say_where_it_listens(tmp_path: Path) -> None:
    lines = served_lines(tmp_path)
    messages = [line["message"] for line in lines]
    assert any(re.fullmatch(r"listening on http://127\.0\.0\.1:\d+", m) for m in messages)
    assert messages[-2:] == ["shutting down: draining the ingest queue", "voxmon stopped"]
    assert all(ISO_Z.fullmatch(line["ts"]) for line in lines)


# voxmon's CLI with a fault injected into the daemon: it crashes once the logs are configured
CRASHING = """
import sys
from exporter import cli, daemon
def crash(*args, **kwargs):
    raise RuntimeError("injected fault")
daemon.serve = crash
sys.exit(cli.main(sys.argv[1:]))
"""


def test_logs_json_crash_traceback_is_one_json_line_and_exit_1(tmp_path: Path) -> None:
    """A log shipper parses every line: a crash of ``serve`` under ``--log-format json``
    once wrote Python's bare multi-line traceback."""
    done = subprocess.run(
        [sys.executable, "-c", CRASHING, "serve", "--log-format", "json", "--db", "v.db"],
        capture_output=True, text=True, cwd=tmp_path, timeout=DEADLINE_S, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    crash = lines[-1]
    assert (crash["level"], crash["logger"]) == ("CRITICAL", "exporter.cli")
    assert crash["message"] == "voxmon serve crashed: RuntimeError: injected fault"
    assert crash["exc"].splitlines()[-1] == "RuntimeError: injected fault"


def test_logs_json_start_up_refusal_is_a_json_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "v.db").mkdir()
    done = voxmon(tmp_path, "serve", "--log-format", "json", "--db", "v.db")
    assert done.returncode == 2
    (line,) = [json.loads(line) for line in done.stderr.splitlines()]
    assert (line["level"], line["logger"]) == ("ERROR", "exporter.cli")
    assert line["message"] == "voxmon: cannot open database v.db: it is a directory"
