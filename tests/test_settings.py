"""Settings layers (defaults < voxmon.toml < VOXMON_* < CLI), one ConfigError for every
problem, the auth/listen-address rule, schedules, tokens, and ``voxmon check-config``."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest

from exporter.cli import main
from exporter.errors import ConfigError
from exporter.settings import (
    DEFAULT_CRONS,
    Settings,
    Token,
    environment_variables,
    unknown_environment,
)
from tests.tools import free_port

SECRET = "s3cret-token-0123456789"
LEVELS = "('DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL')"


@pytest.fixture(autouse=True)
def _clean_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No stray ./voxmon.toml and no VOXMON_* variable from the outside world."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    for name in [n for n in os.environ if n.startswith("VOXMON_")]:
        monkeypatch.delenv(name)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "voxmon.toml"
    path.write_text(text)
    return path


def _problems(
    path: Path | None = None,
    environ: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        Settings.load(path, environ or {}, overrides or {})
    return caught.value.problems


def test_settings_defaults() -> None:
    settings = Settings.load(None, {}, {})
    assert settings == Settings()
    assert (settings.db_path, settings.host, settings.port) == ("voxmon.db", "127.0.0.1", 9473)
    assert (settings.auth, settings.tokens, settings.auth_enabled) == (None, (), False)
    assert settings.log_level == "INFO"
    assert settings.sqlite_synchronous == "FULL"
    assert settings.max_body_bytes == 5 * 1024 * 1024
    assert settings.max_batch == 10_000
    assert settings.future_tolerance_s == 300
    assert settings.event_retention_hours == 48
    assert (settings.hourly_retention_days, settings.daily_retention_days) == (7, 90)
    assert settings.max_org_series == 100
    assert (settings.max_duration_days, settings.max_duration_ms) == (30, 2_592_000_000)
    assert settings.max_live_orgs == 10_000
    assert dict(settings.crons) == {
        "rollup-hourly": "30 * * * *",
        "rollup-daily": "30 1 * * *",
        "cleanup-snapshots": "30 4 * * 0",
        "cleanup-events": "0 5 * * 0",
    }


def test_settings_toml_file_values(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        f"""
db_path = "/var/lib/voxmon/v.db"
host = "10.0.0.5"
port = 9999
log_level = "DEBUG"
sqlite_synchronous = "normal"
max_batch = 500
event_retention_hours = 72

[schedule]
rollup-hourly = "45 * * * *"

[[tokens]]
name = "pipeline"
token = "{SECRET}"
scopes = ["ingest"]

[[tokens]]
token = "{SECRET}-reader"
scopes = ["read", "metrics"]
""",
    )
    settings = Settings.load(path, {}, {})
    assert settings.db_path == "/var/lib/voxmon/v.db"
    assert (settings.host, settings.port) == ("10.0.0.5", 9999)
    assert (settings.log_level, settings.sqlite_synchronous) == ("DEBUG", "normal")
    assert (settings.max_batch, settings.event_retention_hours) == (500, 72)
    assert dict(settings.crons) == {**DEFAULT_CRONS, "rollup-hourly": "45 * * * *"}
    assert settings.tokens == (
        Token("pipeline", SECRET, frozenset({"ingest"})),
        Token("tokens[1]", f"{SECRET}-reader", frozenset({"read", "metrics"})),
    )
    assert settings.auth_enabled is True


def test_settings_reads_voxmon_toml_in_working_directory() -> None:
    Path("voxmon.toml").write_text("port = 7000\n")
    assert Settings.load(None, {}, {}).port == 7000


def test_settings_env_overrides_toml(tmp_path: Path) -> None:
    path = _write(tmp_path, 'port = 1000\ndb_path = "file.db"\nmax_batch = 50\n')
    environ = {"VOXMON_PORT": "2000", "VOXMON_DB_PATH": "env.db", "HOME": "/root", "PATH": "/x"}
    settings = Settings.load(path, environ, {})
    assert (settings.port, settings.db_path, settings.max_batch) == (2000, "env.db", 50)


def test_settings_max_live_orgs_from_env() -> None:
    assert Settings.load(None, {"VOXMON_MAX_LIVE_ORGS": "250"}, {}).max_live_orgs == 250
    assert _problems(None, {"VOXMON_MAX_LIVE_ORGS": "-3"}) == ["max_live_orgs: must be > 0, got -3"]


def test_settings_env_names_are_case_insensitive_after_prefix() -> None:
    assert Settings.load(None, {"VOXMON_Log_Level": "WARNING"}, {}).log_level == "WARNING"


def test_settings_overrides_override_env(tmp_path: Path) -> None:
    path = _write(tmp_path, 'port = 1000\nhost = "127.0.0.2"\n')
    settings = Settings.load(
        path, {"VOXMON_PORT": "2000", "VOXMON_HOST": "::1"}, {"port": 3000, "host": None}
    )
    assert (settings.port, settings.host) == (3000, "::1")


def test_settings_all_problems_reported_together(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
port = "x"
bogus = 1
max_batch = 0
log_level = "LOUD"
host = "0.0.0.0"

[schedule]
rollup-hourly = "nope"
rollup-weekly = "0 0 * * 0"

[[tokens]]
token = "short"
scopes = ["read"]
""",
    )
    environ = {"VOXMON_RETRY_AFTER_S": "abc", "VOXMON_NOPE": "1"}
    assert _problems(path, environ) == [
        "port: expected an integer, got 'x'",
        f"bogus: unknown setting in {path}",
        "tokens[0].token: required, a string of at least 16 characters",
        "VOXMON_RETRY_AFTER_S: expected an integer, got 'abc'",
        "schedule.rollup-hourly: invalid cron expression 'nope':"
        " expected 5 fields (minute hour day month weekday), got 1",
        "schedule.rollup-weekly: unknown job; one of"
        " ['cleanup-events', 'cleanup-snapshots', 'rollup-daily', 'rollup-hourly']",
        "max_batch: must be > 0, got 0",
        f"log_level: one of {LEVELS}, got 'LOUD'",
        "host: 0.0.0.0 is not a loopback address and no tokens are configured;"
        ' add [[tokens]] or set auth = "none" explicitly',
    ]


def test_settings_config_error_message_lists_every_problem() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.load(None, {"VOXMON_PORT": "0", "VOXMON_MAX_BATCH": "-1"}, {})
    assert caught.value.code == "config_invalid"
    assert caught.value.message == (
        "invalid configuration:\n  port: must be > 0, got 0\n  max_batch: must be > 0, got -1"
    )
    assert caught.value.details == caught.value.problems


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("port = true", "port: expected an integer, got True"),
        ("port = 1.5", "port: expected an integer, got 1.5"),
        ("host = 5", "host: expected a string, got 5"),
        ("port = 70000", "port: must be <= 65535, got 70000"),
        ("future_tolerance_s = -1", "future_tolerance_s: must be >= 0, got -1"),
        ("max_batch = 200\nqueue_max_events = 100", "max_batch: must not exceed queue_max_events"),
        (
            'sqlite_synchronous = "OFF"',
            "sqlite_synchronous: one of ('FULL', 'NORMAL', 'EXTRA')",
        ),
        ('auth = "basic"', "auth: one of ('tokens', 'none'), got 'basic'"),
        ('auth = "tokens"', 'auth: "tokens" needs at least one [[tokens]] entry'),
        ('log_level = "verbose"', f"log_level: one of {LEVELS}, got 'verbose'"),
        ("max_duration_days = 0", "max_duration_days: must be > 0, got 0"),
        ("max_duration_days = 3651", "max_duration_days: must be <= 3650, got 3651"),
        ("max_duration_days = 1.5", "max_duration_days: expected an integer, got 1.5"),
        ("max_live_orgs = 0", "max_live_orgs: must be > 0, got 0"),
        ("commit_delay_ms = -1", "commit_delay_ms: must be between 0 and 1000, got -1"),
        ("commit_delay_ms = 1001", "commit_delay_ms: must be between 0 and 1000, got 1001"),
        ('max_live_orgs = "many"', "max_live_orgs: expected an integer, got 'many'"),
        # these passed check-config, then 'serve' died with an OverflowError traceback
        ("event_retention_hours = 1000000000000",
         "event_retention_hours: must be <= 876000, got 1000000000000"),
        ("daily_retention_days = 99999999", "daily_retention_days: must be <= 36500, got 99999999"),
    ],
)  # fmt: skip
def test_settings_rejects_bad_value(tmp_path: Path, text: str, problem: str) -> None:
    assert _problems(_write(tmp_path, text + "\n")) == [problem]


def test_settings_max_duration_days_from_file_env_and_bounds(tmp_path: Path) -> None:
    path = _write(tmp_path, "max_duration_days = 7\n")
    assert Settings.load(path, {}, {}).max_duration_days == 7
    assert Settings.load(path, {"VOXMON_MAX_DURATION_DAYS": "3650"}, {}).max_duration_days == 3650
    assert Settings.load(None, {"VOXMON_MAX_DURATION_DAYS": "1"}, {}).max_duration_days == 1
    assert _problems(None, {"VOXMON_MAX_DURATION_DAYS": "30d"}) == [
        "VOXMON_MAX_DURATION_DAYS: expected an integer, got '30d'"
    ]


@pytest.mark.parametrize("level", ["debug", "INFO", "Warning", "ERROR", "CRITICAL"])
def test_settings_log_level_any_case(level: str) -> None:
    assert Settings.load(None, {}, {"log_level": level}).log_level == level


def test_settings_missing_file_reported(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    assert _problems(path) == [f"{path}: cannot read: No such file or directory"]


def test_settings_invalid_toml_reported_with_env_problems(tmp_path: Path) -> None:
    path = _write(tmp_path, "port = = 3\n")
    problems = _problems(path, {"VOXMON_PORT": "x"})
    assert len(problems) == 2
    assert problems[0].startswith(f"{path}: not valid TOML: ")
    assert problems[1] == "VOXMON_PORT: expected an integer, got 'x'"


@pytest.mark.parametrize(
    "env", [{"VOXMON_TOKENS": "x"}, {"VOXMON_CRONS": "x"}, {"VOXMON_COLOUR": "blue"}]
)
def test_settings_env_unknown_or_structured_setting_ignored_and_named(
    env: dict[str, str],
) -> None:
    """A stray VOXMON_* variable (a client's VOXMON_TOKEN) no longer blocks start-up: it is
    ignored, and ``unknown_environment`` names it for the CLI's warning."""
    (name,) = env
    assert Settings.load(None, {**env, "VOXMON_PORT": "2000"}, {}).port == 2000
    assert unknown_environment({**env, "VOXMON_PORT": "2000", "HOME": "/"}) == [name]


def test_settings_environment_variables_name_every_scalar_setting() -> None:
    names = environment_variables()
    assert names[:4] == ["VOXMON_DB_PATH", "VOXMON_DATABASE_URL", "VOXMON_HOST", "VOXMON_PORT"]
    assert {"VOXMON_LOG_FORMAT", "VOXMON_ACCESS_LOG", "VOXMON_MAX_DURATION_DAYS"} <= set(names)
    assert "VOXMON_TOKENS" not in names and "VOXMON_CRONS" not in names
    structured = ("tokens", "crons")  # [[tokens]] and [schedule] exist in the file only
    fields = [f.name for f in dataclasses.fields(Settings) if f.name not in structured]
    assert names == ["VOXMON_" + name.upper() for name in fields]


@pytest.mark.parametrize(
    ("text", "value"), [("true", True), ("1", True), ("On", True), ("no", False), ("0", False)]
)
def test_settings_access_log_from_env(text: str, value: bool) -> None:
    assert Settings.load(None, {"VOXMON_ACCESS_LOG": text}, {}).access_log is value


def test_settings_log_format_and_access_log_checked_in_every_layer(tmp_path: Path) -> None:
    path = _write(tmp_path, 'log_format = "xml"\naccess_log = "yes"\n')
    assert _problems(path, {"VOXMON_ACCESS_LOG": "maybe"}) == [
        "access_log: expected true or false, got 'yes'",
        "VOXMON_ACCESS_LOG: expected one of 1, true, yes, on, 0, false, no, off, got 'maybe'",
        "log_format: one of ('text', 'json'), got 'xml'",
    ]
    path = _write(tmp_path, 'log_format = "json"\naccess_log = true\n')
    settings = Settings.load(path, {}, {})
    assert (settings.log_format, settings.access_log) == ("json", True)
    assert Settings.load(path, {}, {"access_log": False}).access_log is False


# --- listen address and auth ----------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_settings_loopback_without_tokens_allowed(host: str) -> None:
    settings = Settings.load(None, {}, {"host": host})
    assert (settings.host, settings.auth_enabled) == (host, False)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "voxmon.internal"])
def test_settings_non_loopback_without_tokens_refused(host: str) -> None:
    assert _problems(overrides={"host": host}) == [
        f"host: {host} is not a loopback address and no tokens are configured;"
        ' add [[tokens]] or set auth = "none" explicitly'
    ]


def test_settings_non_loopback_allowed_with_auth_none(tmp_path: Path) -> None:
    settings = Settings.load(_write(tmp_path, 'host = "0.0.0.0"\nauth = "none"\n'), {}, {})
    assert (settings.host, settings.auth, settings.auth_enabled) == ("0.0.0.0", "none", False)


def test_settings_non_loopback_allowed_with_auth_none_from_env() -> None:
    settings = Settings.load(None, {"VOXMON_AUTH": "none", "VOXMON_HOST": "0.0.0.0"}, {})
    assert (settings.host, settings.auth_enabled) == ("0.0.0.0", False)


def test_settings_non_loopback_allowed_with_token(tmp_path: Path) -> None:
    path = _write(
        tmp_path, f'host = "0.0.0.0"\n[[tokens]]\ntoken = "{SECRET}"\nscopes = ["admin"]\n'
    )
    settings = Settings.load(path, {}, {})
    assert settings.host == "0.0.0.0"
    assert settings.auth_enabled is True
    assert settings.tokens == (Token("tokens[0]", SECRET, frozenset({"admin"})),)


def test_settings_token_secret_not_in_repr() -> None:
    assert SECRET not in repr(Token("t", SECRET, frozenset({"read"})))


# --- schedule -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "problem"),
    [
        ('"61 * * * *"', "'61 * * * *': [61 * * * *] is not acceptable, out of range"),
        ('"* * *"', "'* * *': expected 5 fields (minute hour day month weekday), got 3"),
        ('"every hour"', "'every hour': expected 5 fields (minute hour day month weekday), got 2"),
        ('""', "'': expected 5 fields (minute hour day month weekday), got 0"),
        ("5", "5: expected a string, got int"),
        ('"0 0 31 2 *"', "'0 0 31 2 *': it never fires (no such date)"),
        (
            '"0 0 * * * 30"',
            "'0 0 * * * 30': expected 5 fields (minute hour day month weekday), got 6",
        ),
    ],
)
def test_settings_bad_cron_in_schedule(tmp_path: Path, cron: str, problem: str) -> None:
    path = _write(tmp_path, f"[schedule]\nrollup-daily = {cron}\n")
    assert _problems(path) == [f"schedule.rollup-daily: invalid cron expression {problem}"]


def test_settings_schedule_overrides_only_named_jobs(tmp_path: Path) -> None:
    path = _write(tmp_path, '[schedule]\ncleanup-events = "15 3 * * *"\n')
    assert dict(Settings.load(path, {}, {}).crons) == {
        "rollup-hourly": "30 * * * *",
        "rollup-daily": "30 1 * * *",
        "cleanup-snapshots": "30 4 * * 0",
        "cleanup-events": "15 3 * * *",
    }


def test_settings_schedule_must_be_a_table(tmp_path: Path) -> None:
    assert _problems(_write(tmp_path, 'schedule = "30 * * * *"\n')) == [
        "schedule: expected a table [schedule] of job = cron"
    ]


# --- tokens ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        (f'token = "{SECRET}"\nscopes = []', "tokens[0].scopes: a non-empty list drawn from"),
        (f'token = "{SECRET}"\nscopes = ["write"]', "tokens[0].scopes: a non-empty list drawn"),
        (f'token = "{SECRET}"\nscopes = "read"', "tokens[0].scopes: a non-empty list drawn"),
        (f'token = "{SECRET}"\nscopes = [["read"]]', "tokens[0].scopes: a non-empty list drawn"),
        (f'token = "{SECRET}"\nscopes = [1]', "tokens[0].scopes: a non-empty list drawn"),
        (f'token = "{SECRET}"', "tokens[0].scopes: a non-empty list drawn from"),
        ('scopes = ["read"]', "tokens[0].token: required, a string of at least 16 characters"),
        ('token = "fifteen-chars-x"\nscopes = ["read"]', "tokens[0].token: required"),
        ('token = 1234567890123456789\nscopes = ["read"]', "tokens[0].token: required"),
    ],
)
def test_settings_token_validation(tmp_path: Path, table: str, problem: str) -> None:
    (found,) = _problems(_write(tmp_path, f"[[tokens]]\n{table}\n"))
    assert found.startswith(problem)


def test_settings_token_scopes_message_lists_allowed_scopes(tmp_path: Path) -> None:
    path = _write(tmp_path, f'[[tokens]]\ntoken = "{SECRET}"\nscopes = ["root"]\n')
    assert _problems(path) == [
        "tokens[0].scopes: a non-empty list drawn from ['admin', 'ingest', 'metrics', 'read']"
    ]


def test_settings_token_unknown_keys_and_bad_shapes(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        f'[[tokens]]\ntoken = "{SECRET}"\nscopes = ["read"]\nexpires = 1\n',
    )
    assert _problems(path) == ["tokens[0]: unknown keys ['expires']"]
    assert _problems(_write(tmp_path, 'tokens = "abc"\n')) == [
        "tokens: expected an array of tables [[tokens]]"
    ]
    assert _problems(_write(tmp_path, "tokens = [1]\n")) == ["tokens[0]: expected a table"]


def test_settings_token_with_all_scopes(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        f'[[tokens]]\ntoken = "{SECRET}"\nscopes = ["ingest", "read", "admin", "metrics"]\n',
    )
    (token,) = Settings.load(path, {}, {}).tokens
    assert token.scopes == frozenset({"ingest", "read", "admin", "metrics"})


# --- voxmon check-config ----------------------------------------------------------------


def test_cli_check_config_ok_with_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config"]) == 0
    assert capsys.readouterr().out == (
        "configuration OK: listening on 127.0.0.1:9473, database voxmon.db, auth off\n"
    )


def test_cli_check_config_ok_layers_file_env_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, f'port = 1000\n[[tokens]]\ntoken = "{SECRET}"\nscopes = ["ingest"]\n')
    monkeypatch.setenv("VOXMON_PORT", "2000")
    monkeypatch.setenv("VOXMON_DB_PATH", "env.db")
    assert main(["--config", str(path), "check-config", "--host", "0.0.0.0", "--port", "3000"]) == 0
    assert capsys.readouterr().out == (
        "configuration OK: listening on 0.0.0.0:3000, database env.db, auth on\n"
    )


def test_cli_check_config_bad_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, 'port = "x"\n[schedule]\nrollup-hourly = "nope"\n')
    assert main(["--config", str(path), "check-config"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "voxmon: invalid configuration:\n"
        "  port: expected an integer, got 'x'\n"
        "  schedule.rollup-hourly: invalid cron expression 'nope':"
        " expected 5 fields (minute hour day month weekday), got 1\n"
    )


def test_cli_check_config_bad_env_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VOXMON_MAX_BATCH", "lots")
    assert main(["check-config"]) == 2
    assert "VOXMON_MAX_BATCH: expected an integer, got 'lots'" in capsys.readouterr().err


def test_cli_check_config_non_loopback_flag_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--host", "0.0.0.0"]) == 2
    assert "host: 0.0.0.0 is not a loopback address" in capsys.readouterr().err


def test_cli_check_config_bad_log_level_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--log-level", "LOUD"]) == 2
    assert "log_level: one of" in capsys.readouterr().err


def test_cli_check_config_reads_working_directory_file(
    capsys: pytest.CaptureFixture[str],
) -> None:
    Path("voxmon.toml").write_text(f'db_path = "here.db"\nport = {free_port()}\n')
    assert main(["check-config"]) == 0
    assert "database here.db" in capsys.readouterr().out
    assert not Path("here.db").exists()  # checking creates no database
