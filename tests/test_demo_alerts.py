"""The demo against the shipped alert rules: ten simulated minutes of default demo traffic
(a ``FakeClock`` shared by the traffic and the daemon, so it takes seconds) through the
client into a real voxmon, scraped every 15 simulated seconds for 40 minutes (the run, its
stop, and 30 quiet minutes: longer than any ``for:``), then ``promtool test rules`` over the
scraped series with the shipped ``alert_rules.yml`` (real ``for:`` durations) asserts that
no alert fires. A planted copy with four times the in-flight notes must fire
VoicePipelineQueueDepthHigh, so the check can fail."""

from __future__ import annotations

import asyncio
import json
import random
import re
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from voxmon_client import Emitter

from exporter.demo.runner import run
from exporter.demo.shape import DemoConfig
from exporter.demo.traffic import Simulation
from tests.rules import RULES, promtool
from tests.scrape import Sample, samples
from tests.tools import FakeClock

pytestmark = pytest.mark.slow

SCRAPE_S = 15
"""The shipped prometheus.yml's scrape and evaluation interval."""
RUN_S = 600
QUIET_S = 1800
TARGET = {"job": "voxmon", "instance": "voxmon:9473"}
FIRING = 'ALERTS{alertstate="firing"}'


class Recorder:
    """Scrapes ``/metrics`` of the daemon at ``base`` every ``SCRAPE_S`` simulated seconds,
    once everything emitted before then is delivered."""

    def __init__(self, base: str, clock: FakeClock, emitter: Emitter) -> None:
        self.base, self.clock, self.emitter = base, clock, emitter
        self.start = clock.monotonic()
        self.scrapes: list[dict[Sample, float]] = []
        self.text = ""

    def wait(self, seconds: float) -> bool:
        """``run``'s wait: advance the clock, scraping at every boundary crossed."""
        until = self.clock.monotonic() + seconds
        while (due := self.start + SCRAPE_S * (len(self.scrapes) + 1)) <= until:
            self.clock.advance(max(0.0, due - self.clock.monotonic()))
            self.scrape()
        self.clock.advance(until - self.clock.monotonic())
        return False

    def scrape(self) -> None:
        assert self.emitter.flush(60)
        with urllib.request.urlopen(f"{self.base}/metrics", timeout=30) as answer:
            self.text = answer.read().decode()
        self.scrapes.append(exposition(self.text))


SAMPLE = re.compile(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def exposition(text: str) -> dict[Sample, float]:
    """The samples of a text exposition (a tenth of the parse time of prometheus_client's
    parser, which dominated this test); label values stay escaped as exposed."""
    found: dict[Sample, float] = {}
    for line in text.splitlines():
        if match := SAMPLE.match(line):
            labels = tuple(sorted(LABEL.findall(match[2] or "")))
            found[(match[1], labels)] = float(match[3])
    return found


def series_lines(scrapes: list[dict[Sample, float]], epoch_s: float) -> list[dict[str, str]]:
    """promtool ``input_series``: every scraped series with the target's labels (voxmon's
    own ``job`` label becomes ``exported_job``, as Prometheus stores it), ``up`` = 1, and
    timestamps in seconds rebased on the run's start (promtool's time starts at 0)."""
    keys = sorted({key for scrape in scrapes for key in scrape})
    out = [{"series": _selector("up", {}), "values": " ".join("1" for _ in scrapes)}]
    for name, labels in keys:
        shift = epoch_s if name.endswith("_timestamp_seconds") else 0.0
        values = [scrape.get((name, labels)) for scrape in scrapes]
        text = " ".join("_" if v is None else repr(v - shift) for v in values)
        out.append({"series": _selector(name, dict(labels)), "values": text})
    return out


def _selector(name: str, labels: dict[str, str]) -> str:
    if "job" in labels:
        labels["exported_job"] = labels.pop("job")
    pairs = {**labels, **TARGET}
    return name + "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(pairs.items())) + "}"


def promtool_never_fires(tmp: Path, series: list[dict[str, str]], name: str) -> str:
    """``promtool test rules`` asserting no firing alert at any evaluation over the whole
    recording; returns its output (the alerts that fired, on failure)."""
    minutes = len(series[0]["values"].split()) * SCRAPE_S // 60
    test = {
        "rule_files": [str(RULES)],
        "evaluation_interval": f"{SCRAPE_S}s",
        "tests": [{
            "interval": f"{SCRAPE_S}s",
            "input_series": series,
            "promql_expr_test": [{
                "expr": f"count by (alertname) (count_over_time({FIRING}[{minutes + 1}m]))",
                "eval_time": f"{minutes}m",
                "exp_samples": [],
            }],
        }],
    }  # fmt: skip
    path = tmp / f"{name}.yml"
    path.write_text(json.dumps(test), encoding="utf-8")  # JSON is YAML
    done = subprocess.run([promtool(), "test", "rules", str(path)], capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    return done.stdout + done.stderr if done.returncode else ""


def planted(series: list[dict[str, str]], selector: str, add: float) -> list[dict[str, str]]:
    """``series`` with ``add`` added to every sample of the one series named ``selector``."""

    def shift(values: str) -> str:
        return " ".join(repr(add + (0.0 if v == "_" else float(v))) for v in values.split())

    found = [s for s in series if s["series"] == selector]
    assert len(found) == 1, selector
    return [{**s, "values": shift(s["values"])} if s in found else s for s in series]


def gauge(scrape: dict[Sample, float], name: str) -> float:
    return sum(value for (sample, _), value in scrape.items() if sample == name)


async def test_demo_ten_minutes_fire_no_shipped_alert_and_leave_nothing_in_flight(
    start_app: Callable[..., Any], clock: FakeClock, tmp_path: Path
) -> None:
    promtool()  # fails in CI, skips elsewhere, before the run when promtool is missing
    client = await start_app()
    base = str(client.server.make_url("")).rstrip("/")
    emitter = Emitter(base, capacity=100_000, batch_size=1000)
    recorder = Recorder(base, clock, emitter)
    simulation = Simulation(DemoConfig(), random.Random(2026))
    epoch_s = clock.now().timestamp()
    await asyncio.to_thread(run, simulation, emitter.emit, clock, recorder.wait, RUN_S)
    stats = await asyncio.to_thread(emitter.close, 60)
    assert (stats.rejected, stats.failed, stats.abandoned, stats.pending) == (0, 0, 0, 0)
    assert (stats.accepted, stats.duplicates) == (
        simulation.counts["events"],
        simulation.counts["duplicates"],
    )
    await asyncio.to_thread(recorder.wait, QUIET_S)
    scrapes = recorder.scrapes
    assert len(scrapes) == (RUN_S + QUIET_S) // SCRAPE_S

    inflight = [gauge(s, "voice_pipeline_inflight_artifacts") for s in scrapes]
    assert 10 < max(inflight) < 50  # VoicePipelineQueueDepthHigh's threshold
    assert inflight[RUN_S // SCRAPE_S :] == [0.0] * (QUIET_S // SCRAPE_S)
    assert {gauge(s, "voice_pipeline_stuck_artifacts") for s in scrapes} == {0.0}
    assert simulation.in_flight == 0 and simulation.counts["notes"] > 500
    assert exposition(recorder.text) == samples(recorder.text)  # the quick parser is right

    series = series_lines(scrapes, epoch_s)
    assert promtool_never_fires(tmp_path, series, "demo") == ""
    # A note stuck in each of 51 places: in flight stays above 50 for the whole recording
    stuck = _selector("voice_pipeline_inflight_artifacts", {"stage": "transcription"})
    report = promtool_never_fires(tmp_path, planted(series, stuck, 51), "planted")
    assert 'alertname="VoicePipelineQueueDepthHigh"' in report, report
    assert report.count("alertname=") == 1, report
