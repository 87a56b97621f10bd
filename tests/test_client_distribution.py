"""voxmon-client as its own distribution: installed by pip into a fresh virtual environment
it brings none of the daemon's dependencies and delivers to a real voxmon; its source
imports only the standard library (aiohttp in ``aio`` alone) and reads time only in
``clock``."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.tools import daemon, free_port, stored_ids, wait_ready_port

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "client"
PACKAGE = CLIENT / "voxmon_client"
DAEMON_DEPENDENCIES = ("aiohttp", "msgspec", "prometheus_client", "croniter")

PROBE = """
import importlib.metadata, importlib.util, json, sys
from voxmon_client import Emitter
try:
    from voxmon_client import AsyncEmitter
    missing = ""
except ModuleNotFoundError as exc:
    missing = str(exc)
with Emitter(sys.argv[1]) as emitter:
    event_id = emitter.emit("artifact_received", artifact_id="fresh-venv-1", org_id="acme")
    flushed = emitter.flush(20)
stats = emitter.stats()
print(json.dumps({
    "distributions": sorted(d.metadata["Name"] for d in importlib.metadata.distributions()),
    "found": [m for m in sys.argv[2:] if importlib.util.find_spec(m) is not None],
    "loaded": sorted(m for m in sys.modules if m.split(".")[0] in sys.argv[2:]),
    "async_emitter": missing,
    "flushed": flushed,
    "accepted": stats.accepted,
    "event_id": event_id,
    "client_file": sys.modules["voxmon_client"].__file__,
}))
"""


@pytest.mark.slow
def test_client_distribution_installs_alone_in_a_fresh_venv_and_delivers(tmp_path: Path) -> None:
    """``pip install ./client`` as a user runs it (dependencies resolved, build isolated):
    a copy of the source, so the build leaves nothing in the checkout. The new environment
    has no pip of its own; the test's pip installs into it (``--python``), which is the
    same resolver and saves creating one."""
    source, env = tmp_path / "client", tmp_path / "venv"
    shutil.copytree(CLIENT, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    venv.create(env, with_pip=False)
    python = env / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", str(source)],
        check=True, timeout=300, capture_output=True,
    )  # fmt: skip
    db, port = tmp_path / "voxmon.db", free_port()
    with daemon(db, port):
        wait_ready_port(port)
        probe = subprocess.run(
            [str(python), "-I", "-c", PROBE, f"http://127.0.0.1:{port}", *DAEMON_DEPENDENCIES],
            check=True, timeout=60, capture_output=True, text=True, cwd=tmp_path,
        )  # fmt: skip
    seen = json.loads(probe.stdout)
    assert seen["distributions"] == ["voxmon-client"]
    assert (seen["found"], seen["loaded"]) == ([], [])
    assert seen["async_emitter"] == (
        "AsyncEmitter needs aiohttp: pip install 'voxmon-client[aiohttp]'"
    )
    assert (seen["flushed"], seen["accepted"]) == (True, 1)
    assert Path(seen["client_file"]).is_relative_to(env)
    assert stored_ids(db) == [seen["event_id"]] and len(seen["event_id"]) == 36


def imports_of(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports, wherever the import statement is
    (function bodies and ``TYPE_CHECKING`` blocks included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


CLIENT_MODULES = sorted(p.name for p in PACKAGE.glob("*.py"))


@pytest.mark.parametrize("module", CLIENT_MODULES)
def test_client_distribution_imports_only_the_standard_library(module: str) -> None:
    foreign = imports_of(PACKAGE / module) - set(sys.stdlib_module_names) - {"voxmon_client"}
    assert foreign == ({"aiohttp"} if module == "aio.py" else set())


def test_client_distribution_reads_time_only_in_its_clock() -> None:
    readers = [
        path.name
        for path in sorted(PACKAGE.glob("*.py"))
        if "time" in imports_of(path) or re.search(r"datetime\.now\(|\.utcnow\(", path.read_text())
    ]
    assert readers == ["clock.py"]
    assert len(CLIENT_MODULES) >= 11  # the glob found the package
