"""The ``voxmon`` command line as an operator meets it, in real processes: ``--version``,
global options before or after the command, each command's help listing only its own
options without markup, the demo's defaults, and stray ``VOXMON_*`` variables."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from exporter.settings import environment_variables
from tests.tools import free_port, voxmon

ROOT = Path(__file__).resolve().parent.parent
VERSION = re.search(r'^version = "(.+)"$', (ROOT / "pyproject.toml").read_text(), re.M)


def test_cli_version_prints_the_package_version(tmp_path: Path) -> None:
    assert VERSION is not None
    done = voxmon(tmp_path, "--version")
    assert (done.returncode, done.stdout, done.stderr) == (0, f"voxmon {VERSION[1]}\n", "")


@pytest.mark.parametrize(
    "args",
    [
        ["check-config", "--config", "x.toml", "--db", "x.db", "--log-level", "warning"],
        ["--config", "x.toml", "--db", "x.db", "--log-level", "warning", "check-config"],
        ["--config", "x.toml", "check-config", "--db", "x.db", "--log-level", "warning"],
    ],
)
def test_cli_global_options_before_or_after_the_command(tmp_path: Path, args: list[str]) -> None:
    port = free_port()  # check-config binds it: the default port may be taken on this host
    (tmp_path / "x.toml").write_text(f"port = {port}\n")
    done = voxmon(tmp_path, *args)
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout == f"configuration OK: listening on 127.0.0.1:{port}, database x.db, auth off\n"
    )


def test_cli_global_option_after_the_command_overrides_the_one_before(tmp_path: Path) -> None:
    port = str(free_port())
    done = voxmon(tmp_path, "--db", "before.db", "check-config", "--db", "after.db", "--port", port)
    assert done.returncode == 0, done.stderr
    assert "database after.db" in done.stdout


def options(help_text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", help_text))


GLOBAL = {"--help", "--config", "--db", "--database-url", "--log-level", "--log-format"}


@pytest.mark.parametrize(
    ("command", "own"),
    [
        (["serve"], {"--host", "--port", "--instance-id", "--access-log", "--no-access-log"}),
        (["check-config"], {"--host", "--port"}),
        (["rollup", "hourly"], {"--at", "--from", "--to"}),
        (["cleanup"], {"--dry-run"}),
        (["demo"], {"--url", "--serve", "--host", "--port", "--rate", "--orgs", "--duration",
                    "--token", "--seed", "--failure"}),
    ],
)  # fmt: skip
def test_cli_each_command_help_lists_only_its_options(
    tmp_path: Path, command: list[str], own: set[str]
) -> None:
    done = voxmon(tmp_path, command[0], "--help")
    assert done.returncode == 0, done.stderr
    assert options(done.stdout) == own | GLOBAL
    assert "``" not in done.stdout


def test_cli_top_level_help_has_no_markup_and_names_every_command(tmp_path: Path) -> None:
    done = voxmon(tmp_path, "--help")
    assert done.returncode == 0
    assert "``" not in done.stdout and "--version" in done.stdout
    for command in ("serve", "check-config", "rollup", "cleanup", "demo"):
        assert re.search(rf"^    {command} ", done.stdout, re.M), command


def test_cli_demo_help_shows_the_defaults(tmp_path: Path) -> None:
    text = " ".join(voxmon(tmp_path, "demo", "--help").stdout.split())
    for shown in ("--rate RATE new notes per second, at most 1000 (default: 1.0;",
                  "--orgs ORGS organisations, 1 to 100000 (default: 5)",
                  "daemon listens on (default: 9473)",
                  "--host HOST host of the voxmon to send to (default: 127.0.0.1)",
                  "draft_generation 0.08)"):  # fmt: skip
        assert shown in text


def test_cli_unknown_voxmon_variable_warns_once_and_starts(tmp_path: Path) -> None:
    port = free_port()
    done = voxmon(tmp_path, "check-config", VOXMON_TOKEN="x", VOXMON_PROT="9999",
                  VOXMON_PORT=str(port))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"configuration OK: listening on 127.0.0.1:{port},")
    (line,) = done.stderr.splitlines()
    assert line.endswith(
        " WARNING exporter.cli: ignoring VOXMON_PROT, VOXMON_TOKEN: not a voxmon setting;"
        f" voxmon reads {', '.join(environment_variables())}"
    )
    assert "VOXMON_PORT" in environment_variables()


def test_cli_known_variables_do_not_warn(tmp_path: Path) -> None:
    port = free_port()
    done = voxmon(tmp_path, "check-config", VOXMON_PORT=str(port), VOXMON_LOG_FORMAT="json")
    assert (done.returncode, done.stderr) == (0, "")
    assert f"127.0.0.1:{port}," in done.stdout
