"""Reading ``voxmon.toml``: the settings file layer of ``exporter.settings``."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from exporter.tokens import parse_tokens


def read_file(
    path: str | Path | None,
    problems: list[str],
    scalars: Mapping[str, type],
    types: Mapping[str, type],
) -> dict[str, Any]:
    """The settings in ``path`` (None: ``./voxmon.toml`` if it exists); ``scalars`` are the
    settings a file may set besides `[[tokens]]` and `[schedule]`, ``types`` their types
    (integer when not listed). Problems are appended, never raised."""
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
            values["tokens"] = parse_tokens(value, problems)
        elif key == "schedule":
            if isinstance(value, dict):
                values["crons"] = value
            else:
                problems.append("schedule: expected a table [schedule] of job = cron")
        elif key in scalars:
            if problem := _type_problem(key, value, types):
                problems.append(problem)
            else:
                values[key] = value
        else:
            problems.append(f"{key}: unknown setting in {path}")
    return values


def _type_problem(key: str, value: Any, types: Mapping[str, type]) -> str | None:
    kind, wanted = types.get(key, int), {int: "an integer", str: "a string", bool: "true or false"}
    if isinstance(value, kind) and (kind is bool or not isinstance(value, bool)):
        return None
    return f"{key}: expected {wanted[kind]}, got {value!r}"
