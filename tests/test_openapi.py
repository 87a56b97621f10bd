"""``/openapi.json`` drives schemathesis against the live daemon: no 5xx, and every
response matches the documented status codes, content types and schemas."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import aiohttp

from exporter.http.openapi import document
from tests.tools import daemon, free_port, wait_ready

CHECKS = ",".join((
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
))  # fmt: skip


def test_openapi_document_covers_every_route() -> None:
    from exporter.http.routes import ROUTES

    spec = document()
    documented = {(m.lower(), p) for p, ops in spec["paths"].items() for m in ops}
    assert documented == {(method.lower(), path) for method, path, _, _ in ROUTES}
    assert spec["openapi"] == "3.1.0"


async def seed(base: str) -> None:
    async with aiohttp.ClientSession() as session:
        await wait_ready(session, base)
        async with session.get(f"{base}/openapi.json") as response:
            assert response.status == 200


def test_openapi_schemathesis_finds_no_violation(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    tool = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert tool, "schemathesis is a test dependency"
    with daemon(tmp_path / "voxmon.db", port):
        asyncio.run(seed(base))
        result = subprocess.run(
            [tool, "run", f"{base}/openapi.json", "--checks", CHECKS, "--max-examples", "20",
             "--seed", "20261128", "--request-timeout", "30", "--no-color"],
            capture_output=True, text=True, timeout=400, cwd=tmp_path,
        )  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_openapi_schemathesis_negative_mode_finds_no_violation(tmp_path: Path) -> None:
    """Schema-violating requests (every parameter and body generated outside its schema)
    are all refused with a 4xx, never accepted and never a 5xx."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    tool = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert tool, "schemathesis is a test dependency"
    with daemon(tmp_path / "voxmon.db", port):
        asyncio.run(seed(base))
        result = subprocess.run(
            [tool, "run", f"{base}/openapi.json", "--mode", "negative", "--checks", "all",
             "--max-examples", "20", "--seed", "20261203", "--request-timeout", "30",
             "--no-color"],
            capture_output=True, text=True, timeout=400, cwd=tmp_path,
        )  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
