"""``voxmon --version`` prints the installed distribution's version and exits 0."""

from __future__ import annotations

from importlib.metadata import version

import pytest

from exporter.cli import main


def test_cli_version_prints_the_distribution_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"voxmon {version('voxmon')}\n"
    assert version("voxmon") == "0.1.0"
