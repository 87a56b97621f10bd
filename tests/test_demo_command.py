"""``voxmon demo`` needs the client distribution; the daemon does not. Without the client
installed the demo refuses with the install hint (exit 2) and every other command still runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from exporter.cli_parser import parser
from exporter.demo.command import MISSING_CLIENT
from tests.tools import free_port

# voxmon's CLI in a process where ``import voxmon_client`` fails as if it were not installed
WITHOUT_CLIENT = """
import sys
sys.modules["voxmon_client"] = None
from exporter.cli import main
code = main(sys.argv[1:])
print("client loaded:", any(m.startswith("voxmon_client.") for m in sys.modules))
sys.exit(code)
"""


def cli_without_client(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_CLIENT, *args],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip


def test_demo_command_without_the_client_says_how_to_install_it(tmp_path: Path) -> None:
    done = cli_without_client(tmp_path, "demo", "--url", "http://127.0.0.1:9", "--duration", "1")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"voxmon: {MISSING_CLIENT}"]
    assert done.stdout == "client loaded: False\n"


def test_demo_command_daemon_commands_run_without_the_client(tmp_path: Path) -> None:
    port = str(free_port())  # check-config binds it: the default port may be taken here
    done = cli_without_client(tmp_path, "check-config", "--db", str(tmp_path / "v.db"),
                              "--port", port)  # fmt: skip
    assert (done.returncode, done.stdout.splitlines()[-1]) == (0, "client loaded: False")


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--rate", "1e9"], "argument --rate: at most 1000 notes/s, got 1e9"),
        (["--rate", "inf"], "argument --rate: at most 1000 notes/s, got inf"),
        (["--orgs", "0"], "argument --orgs: must be from 1 to 100000, got 0"),
        (["--orgs", "-3"], "argument --orgs: must be from 1 to 100000, got -3"),
        (["--orgs", "1000000000"], "argument --orgs: must be from 1 to 100000, got 1000000000"),
        (["--url", "notaurl"], "argument --url: an http:// or https:// URL, got 'notaurl'"),
        (["--url", "ftp://x"], "argument --url: an http:// or https:// URL, got 'ftp://x'"),
        (["--url", "http://[::1"], "argument --url: an http:// or https:// URL, got 'http://[::1'"),
    ],
)
def test_demo_bad_values_are_one_usage_error(
    args: list[str], error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each once ran: a traceback (a URL urllib cannot open), a silent 1 organisation, or a
    generator that fell behind for ever, ignored SIGTERM and grew to gigabytes (1e9 notes/s)."""
    with pytest.raises(SystemExit) as exited:
        parser().parse_args(["demo", *args])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"voxmon demo: error: {error}"


def test_demo_accepts_the_bounds() -> None:
    args = parser().parse_args(
        ["demo", "--rate", "1000", "--orgs", "100000", "--url", "https://voxmon.example:8443/"]
    )
    assert (args.rate, args.orgs, args.url) == (1000.0, 100000, "https://voxmon.example:8443/")
