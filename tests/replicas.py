"""Several ``voxmon serve`` replicas on one PostgreSQL database, as subprocesses: started
together, SIGKILLed, restarted under the same instance id; batches posted to them until
acknowledged; and what the multi-replica tests read back (``/metrics``, the leader, the
``job=...`` log lines)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.client import HTTPException
from pathlib import Path
from typing import Any

from tests.scrape import Sample, samples
from tests.tools import DEADLINE_S, free_port, http, wait_listening, wait_ready_port

FIGURES: list[str] = []
"""What the replica tests checked, printed at the end of the run (conftest's terminal
summary), so a CI log shows the figures without ``-s``."""


def report(line: str) -> None:
    """Print ``line`` now (seen with ``-s``) and keep it for the run's summary."""
    print(line)
    FIGURES.append(line)


JOBS = ("rollup-hourly", "rollup-daily", "cleanup-snapshots", "cleanup-events")


def schedule(now: datetime, **crons: str) -> str:
    """voxmon.toml text: every job fires once a day twelve hours from ``now`` (never during a
    test; each still runs its start-up catch-up), but for the crons given by job name
    (``**{"rollup-hourly": "* * * * *"}``)."""
    far = f"0 {(now.hour + 12) % 24} * * *"
    table = {job: crons.get(job, far) for job in JOBS}
    return "[schedule]\n" + "".join(f'{job} = "{cron}"\n' for job, cron in table.items())


@dataclass
class Replica:
    """One replica: its instance id and port stay the same across restarts; each start logs
    to a file of its own (``r1.1.log``, ``r1.2.log``, ...)."""

    instance_id: str
    port: int
    process: subprocess.Popen[str] | None = None
    logs: list[Path] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class Cluster:
    """``size`` replicas ``r0``, ``r1``, ... of ``voxmon serve`` on ``database_url``, with
    the ``voxmon.toml`` text ``config``, in ``directory``; each is given its instance id by
    ``--instance-id`` (``flag``) or by ``VOXMON_INSTANCE_ID``."""

    def __init__(
        self, directory: Path, database_url: str, config: str, size: int, flag: bool
    ) -> None:
        self.directory = directory
        self.database_url = database_url
        self.flag = flag
        (directory / "voxmon.toml").write_text(config)
        self.replicas = [Replica(f"r{i}", free_port()) for i in range(size)]

    def start(self, *replicas: Replica) -> None:
        """Start ``replicas`` (default: all) at once; returns when every one is ready."""
        chosen = replicas or tuple(self.replicas)
        for replica in chosen:
            log = self.directory / f"{replica.instance_id}.{len(replica.logs) + 1}.log"
            replica.logs.append(log)
            env = {k: v for k, v in os.environ.items() if not k.startswith("VOXMON_")}
            named = ["--instance-id", replica.instance_id] if self.flag else []
            if not self.flag:
                env["VOXMON_INSTANCE_ID"] = replica.instance_id
            with open(log, "w") as stderr:
                replica.process = subprocess.Popen(
                    [sys.executable, "-m", "exporter", "serve", "--config", "voxmon.toml",
                     "--database-url", self.database_url, "--port", str(replica.port), *named],
                    stdout=subprocess.DEVNULL, stderr=stderr, text=True, cwd=self.directory,
                    env=env,
                )  # fmt: skip
        for replica in chosen:
            assert replica.process is not None
            wait_listening(replica.process, replica.logs[-1], replica.port)
            wait_ready_port(replica.port)

    def kill(self, replica: Replica) -> None:
        """SIGKILL: no shutdown, no flush, the database session dropped with the socket."""
        assert replica.process is not None and replica.process.poll() is None
        os.kill(replica.process.pid, signal.SIGKILL)
        replica.process.wait(timeout=DEADLINE_S)

    def close(self) -> None:
        for replica in self.replicas:
            if replica.process is not None and replica.process.poll() is None:
                replica.process.kill()
            if replica.process is not None:
                replica.process.wait(timeout=DEADLINE_S)

    def log_sizes(self) -> dict[Path, int]:
        """Bytes logged so far by every start of every replica (an offset to read on from)."""
        return {log: log.stat().st_size for r in self.replicas for log in r.logs}


@contextmanager
def replica_set(
    directory: Path, database_url: str, config: str, *, size: int = 3, flag: bool = True
) -> Iterator[Cluster]:
    """A started ``Cluster``; every replica still running at the end is SIGKILLed."""
    cluster = Cluster(directory, database_url, config, size, flag)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


# ---- reading replicas back -----------------------------------------------------------------


def get_json(replica: Replica, path: str) -> Any:
    status, _, body = http("GET", replica.url + path)
    assert status == 200, (replica.instance_id, path, status, body)
    return json.loads(body)


def scrape(replica: Replica) -> dict[Sample, float]:
    status, _, body = http("GET", replica.url + "/metrics")
    assert status == 200, (replica.instance_id, status)
    return samples(body.decode())


def value(found: dict[Sample, float], name: str, **labels: str) -> float | None:
    """The sample ``name`` whose labels include ``labels``; None when there is none."""
    for (sample, sample_labels), number in found.items():
        if sample == name and set(labels.items()) <= set(sample_labels):
            return number
    return None


def leaders(replicas: Sequence[Replica]) -> list[Replica]:
    """The replicas whose ``/metrics`` say ``voxmon_leader 1``."""
    return [r for r in replicas if value(scrape(r), "voxmon_leader") == 1]


def poll(what: str, probe: Callable[[], Any], timeout_s: float = DEADLINE_S) -> Any:
    """``probe()`` every 0.1 s until it returns something truthy (returned); a failure names
    ``what`` when ``timeout_s`` passes first (a bound against hanging, not a timing check)."""
    pause, deadline = threading.Event(), datetime.now(UTC) + timedelta(seconds=timeout_s)
    while datetime.now(UTC) < deadline:
        found = probe()
        if found:
            return found
        pause.wait(0.1)
    raise AssertionError(f"{what}: not within {timeout_s:.0f} s")


def one_leader(replicas: Sequence[Replica]) -> Replica:
    """Wait until exactly one of ``replicas`` exports ``voxmon_leader 1``; that one."""
    found: list[Replica] = []

    def single() -> bool:
        found[:] = leaders(replicas)
        return len(found) == 1

    poll(f"exactly one of {[r.instance_id for r in replicas]} with voxmon_leader 1", single)
    return found[0]


def job_status(replica: Replica, name: str) -> dict[str, Any]:
    """Job ``name`` in ``GET /v1/rollups`` (the shared job runs, whichever replica answers);
    ``last_run.instance`` is the replica that ran its last run."""
    jobs = get_json(replica, "/v1/rollups")["jobs"]
    found: dict[str, Any] = next(j for j in jobs if j["job"] == name)
    return found


def ran_since(replica: Replica, name: str, since: datetime) -> bool:
    """Whether ``replica`` logged a scheduled run of job ``name`` started at ``since`` or later."""
    return any(
        (line.job, line.trigger, line.instance) == (name, "schedule", replica.instance_id)
        and line.started >= since
        for line in job_lines(dict.fromkeys(replica.logs, 0))
    )


# ---- job log lines -------------------------------------------------------------------------

JOB_LINE = re.compile(
    r"^(?P<at>\S+) INFO \S+: job=(?P<job>\S+) trigger=(?P<trigger>\S+)"
    r"(?: instance=(?P<instance>\S+))? result=(?P<result>\S+) windows=(?P<windows>.+?)"
    r" rows=\d+ .* duration=(?P<duration>[0-9.]+)s$"
)
SPAN = re.compile(r"^(?P<first>[^ .]+?)(?:\.\.(?P<last>\S+))? \((?P<count>\d+)\)$")


@dataclass(frozen=True, slots=True)
class JobLine:
    """One logged job run: when it started (log time minus its duration), by whom, and the
    windows it wrote as (first, last, how many); (None, None, 0) when it wrote none."""

    log: Path
    started: datetime
    job: str
    trigger: str
    instance: str | None
    result: str
    first: datetime | None
    last: datetime | None
    count: int


def job_lines(offsets: dict[Path, int]) -> list[JobLine]:
    """Every ``job=`` line logged in each file of ``offsets`` after its offset (bytes; 0 for
    the whole file), in start order."""
    found = []
    for log, offset in offsets.items():
        with open(log, "rb") as stream:
            stream.seek(offset)
            text = stream.read().decode()
        found += [job_line(log, m) for m in map(JOB_LINE.match, text.splitlines()) if m]
    return sorted(found, key=lambda line: line.started)


def job_line(log: Path, match: re.Match[str]) -> JobLine:
    logged = datetime.fromisoformat(match["at"].replace("Z", "+00:00"))
    span = SPAN.match(match["windows"])
    first = datetime.fromisoformat(span["first"]) if span else None
    last = datetime.fromisoformat(span["last"]) if span and span["last"] else first
    return JobLine(
        log, logged - timedelta(seconds=float(match["duration"])), match["job"],
        match["trigger"], match["instance"], match["result"], first, last,
        int(span["count"]) if span else 0,
    )  # fmt: skip


# ---- posting batches -----------------------------------------------------------------------


@dataclass
class Deliveries:
    """Answers to the batches by batch index (2xx bodies only) and the attempts that got none."""

    answers: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    unanswered: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def post(self, replica: Replica, index: int, batch: list[dict[str, Any]]) -> bool:
        """POST one batch; True when it was acknowledged (2xx, after its commit)."""
        try:
            status, _, body = http("POST", replica.url + "/v1/events", batch)
        except (OSError, HTTPException):  # refused, reset: the replica is down
            status, body = 0, b""
        with self.lock:
            if 200 <= status < 300:
                self.answers.setdefault(index, []).append(json.loads(body))
                return True
            self.unanswered += 1
            return False

    def total(self, key: str) -> int:
        return sum(a[key] for answers in self.answers.values() for a in answers)


def spread(
    cluster: Cluster, batches: Sequence[list[dict[str, Any]]], deliveries: Deliveries,
    midway: Callable[[], None],
) -> None:  # fmt: skip
    """Batch ``i`` to replica ``i % n`` from six client threads, once each; ``midway()``
    runs (in this thread, the clients going on) when half of them are answered."""
    replicas = cluster.replicas
    with ThreadPoolExecutor(6) as clients:
        sent = [
            clients.submit(deliveries.post, replicas[i % len(replicas)], i, batch)
            for i, batch in enumerate(batches)
        ]
        for done, _ in enumerate(as_completed(sent), start=1):
            if done == len(batches) // 2:
                midway()


def replay(
    cluster: Cluster, batches: Sequence[list[dict[str, Any]]], deliveries: Deliveries
) -> None:
    """Every batch again, round robin from replica ``(i + 1) % n`` on, until one answers
    2xx (at most two rounds over the replicas)."""
    replicas = cluster.replicas

    def until_acknowledged(i: int) -> None:
        for attempt in range(2 * len(replicas)):
            if deliveries.post(replicas[(i + 1 + attempt) % len(replicas)], i, batches[i]):
                return
        raise AssertionError(f"batch {i} was never acknowledged")

    with ThreadPoolExecutor(6) as clients:
        list(clients.map(until_acknowledged, range(len(batches))))
