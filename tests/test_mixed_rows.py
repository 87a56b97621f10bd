"""Snapshot rows stored before the packed form next to rows stored after it, on both
backends: the daily job, history, summary and the organisation breakdown read them together
and give what merging the decoded parts gives."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import pytest

from exporter.records import SnapshotRow
from exporter.storage.base import Store
from exporter.timestamps import datetime_to_ms
from rollup import jobs
from rollup.codec import decode_parts, encode_parts
from rollup.digest import LatencyDigest
from rollup.parts import SnapshotParts, StageParts, derived
from rollup.queries import ReportService
from tests.backends import both, store_for

pytestmark = both

GOLDEN = Path(__file__).parent / "golden"
LEGACY_PARTS = (GOLDEN / "legacy_parts.msgpack").read_bytes()
LEGACY_E2E = (GOLDEN / "legacy_digest.msgpack").read_bytes()
DAY = datetime(2026, 11, 26, tzinfo=UTC)
NOW = datetime(2026, 11, 28, 12, 40, tzinfo=UTC)
HOUR = timedelta(hours=1)
P = ParamSpec("P")
T = TypeVar("T")


class DirectReader:
    """``Reader`` running each read on the test's store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def run(
        self, fn: Callable[Concatenate[Store, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        return fn(self._store, *args, **kwargs)


@pytest.fixture
def store(database_url: str, tmp_path: Path) -> Iterator[Any]:
    opened = store_for(database_url, tmp_path)
    yield opened
    opened.close()


def fresh_parts() -> SnapshotParts:
    e2e = LatencyDigest.of([0.0, 3.0, 12.5, 95_000.0])
    return SnapshotParts(
        artifacts_received=3, artifacts_completed=2, artifacts_failed=1, end_to_end=e2e,
        stages={"transcription": StageParts(4, 3, 1, LatencyDigest.of([800.0, 2e6])),
                "claims_extraction": StageParts(), "entity_resolution": StageParts(),
                "draft_generation": StageParts()},
    )  # fmt: skip


def row(start: datetime, scope: str, parts: SnapshotParts, data: bytes, e2e: bytes) -> SnapshotRow:
    return SnapshotRow("hourly", datetime_to_ms(start), scope, parts.artifacts_received,
                       parts.artifacts_completed, parts.artifacts_failed, parts.ai_cost_usd,
                       data, e2e)  # fmt: skip


def put_day(store: Any) -> tuple[SnapshotParts, SnapshotParts]:
    """Hour 0 stored before the packed form, hour 1 after, for the platform and org o1;
    the other hours quiet. Returns (legacy, fresh) parts."""
    legacy, fresh = decode_parts(LEGACY_PARTS), fresh_parts()
    store.write(lambda c: c.horizons.extend_history(datetime_to_ms(DAY)))
    quiet = SnapshotParts()
    for k in range(24):
        hour = DAY + k * HOUR
        rows = [row(hour, "", quiet, encode_parts(quiet), quiet.end_to_end.to_bytes())]
        if k == 0:
            rows = [row(hour, scope, legacy, LEGACY_PARTS, LEGACY_E2E) for scope in ("", "o1")]
        elif k == 1:
            data = encode_parts(fresh)
            rows = [row(hour, scope, fresh, data, fresh.end_to_end.to_bytes())
                    for scope in ("", "o1")]  # fmt: skip
        start = datetime_to_ms(hour)
        store.write(lambda c, s=start, r=rows: c.snapshots.replace_snapshots("hourly", s, r))
    return legacy, fresh


async def test_mixed_rows_merge_in_the_daily_job_and_the_reports(store: Any) -> None:
    legacy, fresh = put_day(store)
    both_hours = SnapshotParts.merge_all([legacy, fresh])
    jobs.rollup_day(store, jobs.direct_write(store), DAY, NOW)
    start, end = datetime_to_ms(DAY), datetime_to_ms(DAY + 24 * HOUR)
    daily = store.snapshots.snapshot_rows("daily", start, end, "o1")
    assert [decode_parts(r.parts) for r in daily] == [both_hours]
    assert LatencyDigest.from_bytes(daily[0].end_to_end) == both_hours.end_to_end
    reports = ReportService(DirectReader(store))
    history = await reports.history("hourly", start, start + 2 * 3_600_000, "o1")
    assert [h.derived for h in history] == [derived(legacy), derived(fresh)]
    summary = await reports.summary(start, end, "o1", datetime_to_ms(NOW))
    assert summary.derived == derived(both_hours)
    for period in ("hourly", "daily"):
        (org,) = await reports.orgs(period, start, end, 10)
        assert (org.org_id, org.received) == ("o1", both_hours.artifacts_received)
        assert org.end_to_end_avg_ms == both_hours.end_to_end.avg
        assert org.end_to_end_p95_ms == both_hours.end_to_end.quantile(0.95)
