"""deploy/scale-out, the example of several replicas: the compose file (the documented
services, two replicas on one database with distinct instance ids, tokens from .env),
HAProxy's configuration (parsed: both replicas, round-robin, the readiness check), Prometheus's
configuration (promtool in the container's layout, every replica scraped directly, the
remote-write example) and the two replicas started as the compose file starts them, on a
real PostgreSQL database. Docker is not needed (nor used)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from exporter.http.routes import SCOPE_OF
from exporter.settings import Settings
from tests.backends import fresh_database
from tests.tools import DEADLINE_S, free_port, require, wait_ready_port

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "deploy" / "scale-out"
DOC = ROOT / "docs" / "deploy-scale-out.md"
SERVICES = ["alertmanager", "haproxy", "postgres", "prometheus", "voxmon-1", "voxmon-2"]
INSTANCE_IDS = {"voxmon-1": "voxmon-1", "voxmon-2": "voxmon-2"}
"""Each replica service and its VOXMON_INSTANCE_ID."""
DOTENV = {
    "POSTGRES_PASSWORD": "5f0c2a9e41d7b3c8",
    "VOXMON_INGEST_TOKEN": "ingest-0123456789abcdef",
    "VOXMON_METRICS_TOKEN": "metrics-0123456789abcdef",
    "VOXMON_ADMIN_TOKEN": "admin-0123456789abcdef",
}
"""A .env as docs/deploy-scale-out.md has the operator write it."""
PROMETHEUS_DIR = PurePosixPath("/etc/prometheus")
VARIABLE = re.compile(r"\$\{(\w+)(?::\?[^}]*)?\}")


def interpolate(text: str, env: Mapping[str, str] = DOTENV) -> str:
    """Compose's ``${NAME}`` / ``${NAME:?message}`` substitution (KeyError when unset)."""
    return VARIABLE.sub(lambda match: env[match.group(1)], text)


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((HERE / "compose.yaml").read_text("utf-8"))
    return loaded


def services() -> dict[str, Any]:
    found: dict[str, Any] = compose()["services"]
    return found


def replica_environment(service: str) -> dict[str, str]:
    """The replica's environment with .env substituted, as its container gets it."""
    return {k: interpolate(v) for k, v in services()[service]["environment"].items()}


def documented_services() -> list[str]:
    """The first column of the services table in docs/deploy-scale-out.md."""
    return sorted(re.findall(r"^\| `([\w-]+)` \|", DOC.read_text("utf-8"), re.MULTILINE))


def test_compose_runs_the_documented_services() -> None:
    assert sorted(services()) == SERVICES
    assert documented_services() == SERVICES


def test_replicas_share_one_database_with_distinct_instance_ids() -> None:
    envs = {name: replica_environment(name) for name in INSTANCE_IDS}
    assert {name: env["VOXMON_INSTANCE_ID"] for name, env in envs.items()} == INSTANCE_IDS
    urls = {env["VOXMON_DATABASE_URL"] for env in envs.values()}
    assert urls == {f"postgresql://voxmon:{DOTENV['POSTGRES_PASSWORD']}@postgres:5432/voxmon"}
    postgres = {k: interpolate(v) for k, v in services()["postgres"]["environment"].items()}
    url = urlsplit(urls.pop())
    assert (url.username, url.password, url.path) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        "/" + postgres["POSTGRES_DB"],
    )
    for name in INSTANCE_IDS:
        service = services()[name]
        assert "ports" not in service  # reached through HAProxy and by Prometheus only
        assert service["depends_on"] == {"postgres": {"condition": "service_healthy"}}


def rendered_settings(tmp_path: Path, service: str) -> Settings:
    """The replica's settings: its voxmon.toml (rendered from .env) and its environment."""
    toml = tmp_path / "voxmon.toml"
    toml.write_text(interpolate(compose()["configs"]["voxmon-toml"]["content"]), "utf-8")
    return Settings.load(toml, replica_environment(service), {"host": "0.0.0.0"})


def test_replicas_load_their_tokens_from_the_rendered_voxmon_toml(tmp_path: Path) -> None:
    settings = rendered_settings(tmp_path, "voxmon-1")
    assert settings.auth_enabled
    assert settings.location.kind == "postgres"
    assert {t.name: (t.secret, sorted(t.scopes)) for t in settings.tokens} == {
        "pipeline": (DOTENV["VOXMON_INGEST_TOKEN"], ["ingest"]),
        "prometheus": (DOTENV["VOXMON_METRICS_TOKEN"], ["metrics"]),
        "operator": (DOTENV["VOXMON_ADMIN_TOKEN"], ["admin"]),
    }
    # Prometheus reads the same metrics token, from the secret made of the same variable.
    assert compose()["secrets"] == {"voxmon-metrics-token": {"environment": "VOXMON_METRICS_TOKEN"}}


def test_replicas_take_their_instance_id_from_the_environment(tmp_path: Path) -> None:
    """Waits on the instance_id setting (issue 13, phase 2)."""
    ids = {name: rendered_settings(tmp_path, name).instance_id for name in INSTANCE_IDS}
    assert ids == INSTANCE_IDS


def test_compose_builds_the_image_with_pip_from_the_repository() -> None:
    for name in INSTANCE_IDS:
        build, command = services()[name]["build"], services()[name]["command"]
        assert (HERE / build["context"]).resolve() == ROOT
        dockerfile = (ROOT / build["dockerfile"]).read_text("utf-8")
        assert "RUN pip install --no-cache-dir . " in dockerfile
        assert 'ENTRYPOINT ["voxmon"]' in dockerfile
        config = services()[name]["configs"][0]
        assert config == {"source": "voxmon-toml", "target": "/etc/voxmon/voxmon.toml"}
        assert command == ["--config", config["target"], "serve", "--host", "0.0.0.0"]


# HAProxy


def haproxy() -> dict[str, list[str]]:
    """haproxy.cfg as sections ("backend voxmon": its lines), comments and blanks dropped."""
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    for raw in (HERE / "haproxy.cfg").read_text("utf-8").splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line:
            continue
        if line[0].isspace():
            current.append(" ".join(line.split()))
        else:
            current = sections.setdefault(" ".join(line.split()), [])
    return sections


def test_haproxy_balances_round_robin_over_both_replicas() -> None:
    backend = haproxy()["backend voxmon"]
    assert "balance roundrobin" in backend
    servers = [line.split()[1:] for line in backend if line.startswith("server ")]
    assert servers == [[name, f"{name}:9473"] for name in INSTANCE_IDS]
    defaults = next(line.split() for line in backend if line.startswith("default-server "))
    assert "check" in defaults
    frontend = haproxy()["frontend voxmon"]
    assert (frontend[0], frontend[-1]) == ("bind :9473", "default_backend voxmon")
    assert "127.0.0.1:9473:9473" in services()["haproxy"]["ports"]
    mount = "./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro"
    assert services()["haproxy"]["volumes"] == [mount]


def test_haproxy_checks_readiness_on_the_open_route() -> None:
    backend = haproxy()["backend voxmon"]
    assert "option httpchk" in backend
    assert "http-check send meth GET uri /readyz" in backend
    assert "http-check expect status 200" in backend
    assert SCOPE_OF[("GET", "/readyz")] is None  # the check carries no token


def test_haproxy_refuses_metrics_so_nothing_scrapes_through_it() -> None:
    assert "http-request deny deny_status 403 if { path /metrics }" in haproxy()["frontend voxmon"]


# Prometheus


def prometheus() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((HERE / "prometheus.yml").read_text("utf-8"))
    return loaded


def test_prometheus_scrapes_each_replica_directly() -> None:
    (job,) = prometheus()["scrape_configs"]
    assert (job["job_name"], job["metrics_path"]) == ("voxmon", "/metrics")
    assert SCOPE_OF[("GET", "/metrics")] == "metrics"
    groups = [(g["targets"], g["labels"]["instance"]) for g in job["static_configs"]]
    assert groups == [([f"{name}:9473"], iid) for name, iid in INSTANCE_IDS.items()]
    assert prometheus()["rule_files"] == ["alert_rules.yml"]
    (alerting,) = prometheus()["alerting"]["alertmanagers"]
    assert alerting["static_configs"] == [{"targets": ["alertmanager:9093"]}]
    assert "remote_write" not in prometheus()  # an example, commented out


def container_layout(root: Path) -> Path:
    """The Prometheus container's /etc/prometheus under ``root``, from compose.yaml's mounts
    of the prometheus service (files beside compose.yaml) and its secrets (from .env)."""
    service = services()["prometheus"]
    for volume in service["volumes"]:
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            place = root / PurePosixPath(target).relative_to(PROMETHEUS_DIR)
            shutil.copyfile(HERE / source, place)
    for secret in service["secrets"]:
        variable = compose()["secrets"][secret["source"]]["environment"]
        place = root / PurePosixPath(secret["target"]).relative_to(PROMETHEUS_DIR)
        place.write_text(DOTENV[variable], "utf-8")
    assert "--config.file=/etc/prometheus/prometheus.yml" in service["command"]
    return root / "prometheus.yml"


def promtool_check(config: Path) -> str:
    result = subprocess.run(
        [require("promtool"), "check", "config", config.name],
        capture_output=True, text=True, timeout=60, check=False, cwd=config.parent,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def shipped_rules() -> int:
    groups = yaml.safe_load((ROOT / "alert_rules.yml").read_text("utf-8"))["groups"]
    return sum(len(group["rules"]) for group in groups)


def test_prometheus_config_passes_promtool_in_the_container_layout(tmp_path: Path) -> None:
    out = promtool_check(container_layout(tmp_path))
    assert "SUCCESS: prometheus.yml is valid prometheus config file syntax" in out
    assert "SUCCESS: 1 rule files found" in out
    assert f"SUCCESS: {shipped_rules()} rules found" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "alert_rules.yml",
        "prometheus.yml",
        "voxmon-metrics.token",
    ]


def test_remote_write_example_passes_promtool_uncommented(tmp_path: Path) -> None:
    config = container_layout(tmp_path)
    text = config.read_text("utf-8")
    block = text[text.index("# remote_write:\n") :].splitlines()
    assert all(line.startswith("# ") for line in block)
    config.write_text(text + "\n".join(line[2:] for line in block) + "\n", "utf-8")
    assert "SUCCESS: 1 rule files found" in promtool_check(config)
    (remote,) = yaml.safe_load(config.read_text("utf-8"))["remote_write"]
    assert remote["url"] == "http://mimir:9009/api/v1/push"


# The two replicas as compose.yaml starts them


@dataclass(frozen=True)
class Replica:
    name: str
    port: int

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def call(url: str, token: str | None = None, body: object = None) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=DEADLINE_S) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@contextmanager
def replica(name: str, database_url: str, workdir: Path) -> Iterator[Replica]:
    """``voxmon`` with the service's command and environment, the database URL pointed at
    the test's database and a port of its own (the containers all use 9473)."""
    toml = workdir / "voxmon.toml"
    toml.write_text(interpolate(compose()["configs"]["voxmon-toml"]["content"]), "utf-8")
    command = [str(toml) if arg == "/etc/voxmon/voxmon.toml" else arg
               for arg in services()[name]["command"]]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOXMON_")}
    env |= replica_environment(name) | {"VOXMON_DATABASE_URL": database_url}
    port, log = free_port(), workdir / f"{name}.log"
    with open(log, "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "exporter", *command, "--port", str(port)],
            stdout=subprocess.DEVNULL, stderr=stderr, env=env, cwd=workdir,
        )  # fmt: skip
    try:
        ready_or_log(port, log)
        yield Replica(name, port)
    finally:
        process.terminate()
        process.wait(timeout=DEADLINE_S)


def ready_or_log(port: int, log: Path) -> None:
    """Wait for ``/readyz``; a replica that never gets there fails with its log."""
    try:
        wait_ready_port(port)
    except AssertionError:
        raise AssertionError(log.read_text()) from None


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Replica]]:
    workdir = tmp_path_factory.mktemp("scale-out")
    with fresh_database() as database_url, ExitStack() as stack:
        yield [stack.enter_context(replica(n, database_url, workdir)) for n in INSTANCE_IDS]


def event(event_id: str) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {"event_id": event_id, "event_type": "artifact_received", "timestamp": now,
            "artifact_id": "note-1", "org_id": "acme"}  # fmt: skip


def test_replicas_serve_one_database_with_the_composed_tokens(replicas: list[Replica]) -> None:
    first, second = replicas
    ingest, metrics = DOTENV["VOXMON_INGEST_TOKEN"], DOTENV["VOXMON_METRICS_TOKEN"]
    assert [call(r.url("/readyz"))[0] for r in replicas] == [200, 200]  # HAProxy's check
    assert call(first.url("/v1/events"), None, [event("e-1")])[0] == 401
    status, body = call(first.url("/v1/events"), ingest, [event("e-1")])
    assert (status, json.loads(body)["accepted"]) == (200, 1)
    # The same event through the other replica: one database, one event.
    status, body = call(second.url("/v1/events"), ingest, [event("e-1")])
    assert (status, json.loads(body)["duplicates"]) == (200, 1)
    assert [call(r.url("/metrics"), metrics)[0] for r in replicas] == [200, 200]
    assert call(first.url("/metrics"), ingest)[0] == 403


def test_each_replica_exports_its_instance_id(replicas: list[Replica]) -> None:
    """Waits on voxmon_instance_info (issue 13, phase 2)."""
    token = DOTENV["VOXMON_METRICS_TOKEN"]
    for r in replicas:
        text = call(r.url("/metrics"), token)[1].decode()
        assert f'voxmon_instance_info{{instance_id="{INSTANCE_IDS[r.name]}"}} 1.0' in text
