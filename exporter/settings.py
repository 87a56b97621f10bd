"""Settings: defaults, then ``voxmon.toml``, then ``VOXMON_*`` variables, then CLI flags.

Every problem in every layer is collected and raised together as one ``ConfigError``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporter.cron import cron_problem
from exporter.errors import ConfigError
from exporter.jobs import DEFAULT_CRONS
from exporter.model import DAY_MS, DEFAULT_MAX_DURATION_DAYS, WIRE_MAX_DURATION_DAYS

SCOPES = frozenset({"ingest", "read", "admin", "metrics"})
SYNCHRONOUS = ("FULL", "NORMAL", "EXTRA")
AUTH_MODES = ("tokens", "none")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")
ENV_PREFIX = "VOXMON_"
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True, slots=True)
class Token:
    """A bearer token and the scopes it grants."""

    name: str
    secret: str = field(repr=False)
    scopes: frozenset[str]


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob of the daemon. Durations are in seconds unless the name says otherwise."""

    db_path: str = "voxmon.db"
    host: str = "127.0.0.1"
    port: int = 9473
    auth: str | None = None
    tokens: tuple[Token, ...] = ()
    log_level: str = "INFO"
    log_format: str = "text"
    """Log line format on stderr: "text" (``<UTC time> <LEVEL> <logger>: <message>``) or
    "json" (one object per line: ts, level, logger, message, and exc with a traceback)."""
    access_log: bool = False
    """Log one line per HTTP request (aiohttp's access log, logger ``aiohttp.access``), at
    INFO whatever log_level says; off by default (Prometheus scrapes would dominate)."""
    sqlite_synchronous: str = "FULL"
    max_body_bytes: int = 5 * 1024 * 1024
    max_batch: int = 10_000
    queue_max_events: int = 100_000
    commit_max_events: int = 20_000
    retry_after_s: int = 1
    future_tolerance_s: int = 300
    event_retention_hours: int = 48
    hourly_retention_days: int = 7
    daily_retention_days: int = 90
    max_org_series: int = 100
    max_live_orgs: int = 10_000
    stuck_after_s: int = 900
    max_range_rows: int = 10_000
    max_event_cost_usd: int = 1000
    header_timeout_s: int = 10
    body_timeout_s: int = 30
    max_connections: int = 1000
    max_duration_days: int = DEFAULT_MAX_DURATION_DAYS
    """Longest duration kept (explicit or derived); longer ones are dropped, counted and,
    for explicit ones, reported as a warning; the event itself is always kept."""
    crons: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_CRONS))

    @property
    def auth_enabled(self) -> bool:
        return self.auth != "none" and bool(self.tokens)

    @property
    def max_duration_ms(self) -> int:
        return self.max_duration_days * DAY_MS

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        environ: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> Settings:
        """Build settings from the layers; raises ``ConfigError`` listing every problem.
        ``path=None`` reads ``voxmon.toml`` only if it exists in the working directory."""
        problems: list[str] = []
        values: dict[str, Any] = {}
        values.update(_from_file(path, problems))
        values.update(_from_env(environ or {}, problems))
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        settings = _build(values, problems)
        if problems:
            raise ConfigError(problems)
        return settings


_SCALARS: dict[str, type] = {
    f.name: f.type  # type: ignore[misc]
    for f in dataclasses.fields(Settings)
    if f.name not in ("tokens", "crons")
}
_STRINGS = ("db_path", "host", "auth", "log_level", "log_format", "sqlite_synchronous")
_TYPES: dict[str, type] = {**dict.fromkeys(_STRINGS, str), "access_log": bool}


def _kind(name: str) -> type:
    return _TYPES.get(name, int)


def _from_file(path: str | Path | None, problems: list[str]) -> dict[str, Any]:
    if path is None:
        if not Path("voxmon.toml").exists():
            return {}
        path = "voxmon.toml"
    try:
        with open(path, "rb") as handle:
            raw = tomllib.load(handle)
    except OSError as exc:
        problems.append(f"{path}: cannot read: {exc.strerror}")
        return {}
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"{path}: not valid TOML: {exc}")
        return {}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "tokens":
            values["tokens"] = _tokens(value, problems)
        elif key == "schedule":
            if isinstance(value, dict):
                values["crons"] = value
            else:
                problems.append("schedule: expected a table [schedule] of job = cron")
        elif key in _SCALARS:
            if problem := _file_type_problem(key, value):
                problems.append(problem)
            else:
                values[key] = value
        else:
            problems.append(f"{key}: unknown setting in {path}")
    return values


def _file_type_problem(key: str, value: Any) -> str | None:
    kind, wanted = _kind(key), {int: "an integer", str: "a string", bool: "true or false"}
    if isinstance(value, kind) and (kind is bool or not isinstance(value, bool)):
        return None
    return f"{key}: expected {wanted[kind]}, got {value!r}"


def _from_env(environ: Mapping[str, str], problems: list[str]) -> dict[str, Any]:
    """``VOXMON_<SETTING>`` values. Other ``VOXMON_*`` names are skipped (a client's
    ``VOXMON_TOKEN`` in the same shell must not stop the daemon): see unknown_environment."""
    values: dict[str, Any] = {}
    for var, text in environ.items():
        key = _env_key(var)
        if key is None:
            continue
        kind = _kind(key)
        if kind is int:
            try:
                values[key] = int(text)
            except ValueError:
                problems.append(f"{var}: expected an integer, got {text!r}")
        elif kind is bool:
            word = text.strip().lower()
            if word not in (*_TRUE, *_FALSE):
                problems.append(f"{var}: expected one of {', '.join(_TRUE + _FALSE)}, got {text!r}")
            values[key] = word in _TRUE
        else:
            values[key] = text
    return values


def _env_key(var: str) -> str | None:
    """The setting a ``VOXMON_*`` variable sets (any case after the prefix), else None."""
    key = var[len(ENV_PREFIX) :].lower() if var.startswith(ENV_PREFIX) else None
    return key if key in _SCALARS else None


def environment_variables() -> list[str]:
    """Every ``VOXMON_*`` variable voxmon reads, in settings order."""
    return [ENV_PREFIX + name.upper() for name in _SCALARS]


def unknown_environment(environ: Mapping[str, str]) -> list[str]:
    """``VOXMON_*`` variables that are no setting, sorted: ignored, and the CLI warns."""
    return sorted(v for v in environ if v.startswith(ENV_PREFIX) and _env_key(v) is None)


def _tokens(raw: Any, problems: list[str]) -> tuple[Token, ...]:
    if not isinstance(raw, list):
        problems.append("tokens: expected an array of tables [[tokens]]")
        return ()
    tokens = []
    for index, item in enumerate(raw):
        where = f"tokens[{index}]"
        if not isinstance(item, dict):
            problems.append(f"{where}: expected a table")
            continue
        secret, scopes = item.get("token"), item.get("scopes")
        extra = set(item) - {"name", "token", "scopes"}
        if extra:
            problems.append(f"{where}: unknown keys {sorted(extra)}")
        if not isinstance(secret, str) or len(secret) < 16:
            problems.append(f"{where}.token: required, a string of at least 16 characters")
            continue
        if not isinstance(scopes, list) or not scopes or not all(_is_scope(s) for s in scopes):
            problems.append(f"{where}.scopes: a non-empty list drawn from {sorted(SCOPES)}")
            continue
        tokens.append(Token(str(item.get("name", where)), secret, frozenset(scopes)))
    return tuple(tokens)


_POSITIVE = (
    "port", "max_body_bytes", "max_batch", "queue_max_events", "commit_max_events",
    "retry_after_s", "event_retention_hours", "hourly_retention_days", "daily_retention_days",
    "max_org_series", "stuck_after_s", "max_range_rows", "max_duration_days", "max_live_orgs",
    "header_timeout_s", "body_timeout_s", "max_connections", "max_event_cost_usd",
)  # fmt: skip


_RETENTION_MAX = {
    "event_retention_hours": 100 * 365 * 24,
    "hourly_retention_days": 100 * 365,
    "daily_retention_days": 100 * 365,
}


def _build(values: dict[str, Any], problems: list[str]) -> Settings:
    crons = dict(DEFAULT_CRONS)
    for job, expr in dict(values.pop("crons", {})).items():
        if job not in DEFAULT_CRONS:
            problems.append(f"schedule.{job}: unknown job; one of {sorted(DEFAULT_CRONS)}")
        elif problem := cron_problem(expr):
            problems.append(f"schedule.{job}: invalid cron expression {expr!r}: {problem}")
        else:
            crons[job] = expr
    settings = Settings(**values, crons=crons)
    _check(settings, problems)
    return settings


def _check(s: Settings, problems: list[str]) -> None:
    for name in _POSITIVE:
        if getattr(s, name) <= 0:
            problems.append(f"{name}: must be > 0, got {getattr(s, name)}")
    for name, most in _RETENTION_MAX.items():  # longer overflows date arithmetic
        if getattr(s, name) > most:
            problems.append(f"{name}: must be <= {most}, got {getattr(s, name)}")
    if s.port > 65535:
        problems.append(f"port: must be <= 65535, got {s.port}")
    if s.max_duration_days > WIRE_MAX_DURATION_DAYS:  # the wire bound of duration_ms
        problems.append(
            f"max_duration_days: must be <= {WIRE_MAX_DURATION_DAYS}, got {s.max_duration_days}"
        )
    if s.future_tolerance_s < 0:
        problems.append(f"future_tolerance_s: must be >= 0, got {s.future_tolerance_s}")
    if s.max_batch > s.queue_max_events:
        problems.append("max_batch: must not exceed queue_max_events")
    if s.log_level.upper() not in LOG_LEVELS:
        problems.append(f"log_level: one of {LOG_LEVELS}, got {s.log_level!r}")
    if s.log_format not in LOG_FORMATS:
        problems.append(f"log_format: one of {LOG_FORMATS}, got {s.log_format!r}")
    if s.sqlite_synchronous.upper() not in SYNCHRONOUS:
        problems.append(f"sqlite_synchronous: one of {SYNCHRONOUS}")
    if s.auth is not None and s.auth not in AUTH_MODES:
        problems.append(f"auth: one of {AUTH_MODES}, got {s.auth!r}")
    if s.auth == "tokens" and not s.tokens:
        problems.append('auth: "tokens" needs at least one [[tokens]] entry')
    if not s.tokens and s.auth != "none" and not _is_loopback(s.host):
        problems.append(
            f"host: {s.host} is not a loopback address and no tokens are configured;"
            ' add [[tokens]] or set auth = "none" explicitly'
        )


def _is_scope(value: Any) -> bool:
    return isinstance(value, str) and value in SCOPES


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
