"""deploy/voxmon.service (systemd-analyze verify where systemd is installed, and a parse of
the unit everywhere) and monitoring/alertmanager.yml (amtool check-config and its routing),
plus the compose stack that runs Alertmanager beside Prometheus."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tools import require

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "voxmon.service"
ALERTMANAGER = ROOT / "monitoring" / "alertmanager.yml"
INSTALLED = "/opt/voxmon/bin/voxmon"
"""Where the unit expects voxmon (docs/operating.md installs it there)."""
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "RestrictSUIDSGID": "yes",
    "CapabilityBoundingSet": "",
    "SystemCallArchitectures": "native",
}


def unit() -> configparser.RawConfigParser:
    """The unit file as sections of keys (repeated keys keep the last value)."""
    parser = configparser.RawConfigParser(strict=False, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text(encoding="utf-8"))
    return parser


def test_unit_parses_with_the_expected_service_settings() -> None:
    parsed = unit()
    assert parsed.sections() == ["Unit", "Service", "Install"]
    service = parsed["Service"]
    assert (service["Type"], service["Restart"], service["User"]) == (
        "exec",
        "on-failure",
        "voxmon",
    )
    assert service["ExecStart"] == f"{INSTALLED} --config /etc/voxmon/voxmon.toml serve"
    assert service["ExecStartPre"] == f"{INSTALLED} --config /etc/voxmon/voxmon.toml check-config"
    # The database is in the state directory, the only writable place under ProtectSystem.
    assert service["StateDirectory"] == "voxmon"
    assert service["Environment"] == "VOXMON_DB_PATH=/var/lib/voxmon/voxmon.db"
    assert service["RestartPreventExitStatus"] == "2"  # a bad configuration does not loop
    assert {key: service.get(key) for key in HARDENING} == HARDENING
    assert parsed["Install"]["WantedBy"] == "multi-user.target"


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """The unit as installed, with this environment's voxmon in place of INSTALLED (verify
    checks that the executables exist)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:  # no systemd here: the parse test above still runs
        pytest.skip("systemd-analyze not installed")
    voxmon = Path(sys.executable).with_name("voxmon")
    assert voxmon.exists(), voxmon
    copy = tmp_path / "voxmon.service"
    copy.write_text(UNIT.read_text(encoding="utf-8").replace(INSTALLED, str(voxmon)), "utf-8")
    result = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require("amtool"), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_alertmanager_config_passes_amtool_check_config() -> None:
    result = amtool("check-config", str(ALERTMANAGER))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert " - 4 inhibit rules\n - 2 receivers\n" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (["severity=critical", "alertname=VoxmonDown"], "voxmon-oncall,voxmon-team"),
        (["severity=warning", "alertname=VoxmonRollupStale"], "voxmon-team"),
        (["alertname=SomethingElse"], "voxmon-team"),
    ],
)
def test_alertmanager_routes_critical_to_the_pager(labels: list[str], receivers: str) -> None:
    result = amtool("config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == receivers


def test_compose_runs_alertmanager_and_prometheus_sends_to_it() -> None:
    compose = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    assert "./monitoring/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro" in compose
    assert '- targets: ["alertmanager:9093"]' in compose
    assert '"127.0.0.1:9093:9093"' in compose
    assert "GF_INSTALL_PLUGINS: yesoreyeram-infinity-datasource 2.9.5\n" in compose
