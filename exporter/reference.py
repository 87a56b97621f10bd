"""The configuration reference (docs/configuration.md), rendered from the ``Settings``
declaration: each field's docstring, type and default, its environment variable and the
command-line flags that set it. ``python -m exporter.reference > docs/configuration.md``."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import itertools
import sys
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from exporter import cli_parser
from exporter.jobs import JOB_DEFS
from exporter.settings import Settings

TOML_KEY = {"crons": "[schedule]", "tokens": "[[tokens]]"}
"""Fields that are TOML tables in voxmon.toml rather than keys (and have no variable)."""

HEADER = """\
# Configuration reference

<!-- Generated from the Settings declaration in exporter/settings.py by
     `python -m exporter.reference > docs/configuration.md`; edit the declaration, not this
     file (tests/test_reference.py fails when they differ). -->

voxmon needs no configuration: `voxmon serve` listens on 127.0.0.1:9473 and keeps its data
in `./voxmon.db`. Each layer overrides the one before it:

1. the defaults below;
2. `voxmon.toml`: the file named by `--config PATH`, else `./voxmon.toml` when it exists;
3. environment variables `VOXMON_<SETTING>` (upper case), for every plain setting;
4. command-line flags, where a setting has one.

Every problem in every layer is reported at once, one line each, and voxmon refuses to
start (exit code 2). `voxmon check-config` runs the same validation and the start-up checks
(database, port) without starting. Durations are in seconds unless the name says otherwise.

```toml
# voxmon.toml
host = "127.0.0.1"
port = 9473
db_path = "/var/lib/voxmon/voxmon.db"

[schedule]
rollup-hourly = "30 * * * *"

[[tokens]]
name = "pipeline"
token = "a-long-random-secret"
scopes = ["ingest"]
```
"""


@dataclass(frozen=True, slots=True)
class Entry:
    """One setting as documented."""

    name: str
    kind: str
    default: str
    help: str
    variable: str | None
    flags: tuple[str, ...]


def field_docs(cls: type) -> dict[str, str]:
    """Field name -> the docstring written under it in the class body (dedented, one
    paragraph)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body if isinstance(tree.body[0], ast.ClassDef) else []
    docs = {}
    for field, after in itertools.pairwise(body):
        if not isinstance(field, ast.AnnAssign) or not isinstance(field.target, ast.Name):
            continue
        if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
            docs[field.target.id] = " ".join(str(after.value.value).split())
    return docs


def setting_flags(parser: argparse.ArgumentParser) -> dict[str, tuple[str, ...]]:
    """Setting (argparse ``dest``) -> the long flags that set it, over every subcommand."""
    found: dict[str, set[str]] = {}
    for action in _actions(parser):
        flags = {o for o in action.option_strings if o.startswith("--")}
        if flags:
            found.setdefault(action.dest, set()).update(flags)
    return {dest: tuple(sorted(flags)) for dest, flags in found.items()}


def _actions(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in parser._actions:
        yield action
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _actions(sub)


def entries() -> list[Entry]:
    """Every Settings field, in declaration order."""
    docs = field_docs(Settings)
    flags = setting_flags(cli_parser.parser())
    out = []
    for field in dataclasses.fields(Settings):
        table = field.name in TOML_KEY
        out.append(
            Entry(
                name=field.name,
                kind=_kind(str(field.type)),
                default=_default(field),
                help=docs.get(field.name, ""),
                variable=None if table else f"VOXMON_{field.name.upper()}",
                flags=flags.get(field.name, ()),
            )
        )
    return out


def _kind(annotation: str) -> str:
    kinds = {"int": "integer", "str": "string", "str | None": "string", "bool": "boolean"}
    return kinds.get(annotation, "table")


def _default(field: dataclasses.Field[object]) -> str:
    if field.default_factory is not dataclasses.MISSING:
        value: object = field.default_factory()
    else:
        value = field.default
    if isinstance(value, Mapping):
        return "see below"
    if value is None or value == ():
        return "none"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f'`"{value}"`' if isinstance(value, str) else f"`{value}`"


def render() -> str:
    """The whole reference as Markdown."""
    lines = [HEADER, "## Settings", ""]
    for entry in entries():
        lines += [f"### {entry.name}", "", entry.help, ""]
        where = [f"type: {entry.kind}", f"default: {entry.default}"]
        where.append(f"file: `{TOML_KEY.get(entry.name, entry.name)}`")
        if entry.variable:
            where.append(f"environment: `{entry.variable}`")
        if entry.flags:
            where.append("flag: " + ", ".join(f"`{flag}`" for flag in entry.flags))
        lines += ["- " + " · ".join(where), ""]
    lines += ["## Jobs in `[schedule]`", "", "| job | default cron (UTC) |", "|---|---|"]
    lines += [f"| `{job.name}` | `{job.cron}` |" for job in JOB_DEFS]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
