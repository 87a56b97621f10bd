"""External tools the tests run (from Debian's prometheus package)."""

from __future__ import annotations

import os
import shutil

import pytest


def require(tool: str) -> str:
    """Path of ``tool``. Missing: the test fails when ``CI`` is set (CI installs it), and is
    skipped on a developer machine without it."""
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is required in CI (install the prometheus package)")
        pytest.skip(f"{tool} not installed")
    return path
