"""``voxmon demo`` needs the client distribution; the daemon does not. Without the client
installed the demo refuses with the install hint (exit 2) and every other command still runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
