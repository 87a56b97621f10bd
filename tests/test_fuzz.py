"""A permanent fuzz suite against a live daemon: hypothesis-generated bodies (random JSON
trees, mutated events, random bytes), headers, content types and query strings for every
route. Never a 5xx, always the JSON error body on a 4xx, and a healthy daemon after.

``VOXMON_FUZZ_EXAMPLES`` sets the examples per test (default 300, about 15 s in
all); ``VOXMON_FUZZ_EXAMPLES=5000 make test`` is the long run.
"""

from __future__ import annotations

import gzip
import http.client
import json
import os
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.catalog import EVENT_TYPES, STAGES
from exporter.http.routes import ROUTES
from tests.tools import daemon, free_port

EXAMPLES = int(os.environ.get("VOXMON_FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


class Live:
    """The daemon under fuzz: one keep-alive-free request at a time over loopback."""

    def __init__(self, port: int) -> None:
        self.port = port

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, Any] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            for name, value in (headers or {}).items():
                conn.putheader(name, value)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    db = tmp_path_factory.mktemp("fuzz") / "voxmon.db"
    port = free_port()
    with daemon(db, port) as process:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if Live(port).request("GET", "/readyz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.05)
        yield Live(port)
        assert process.poll() is None, "the daemon died under fuzz"


def check(status: int, headers: dict[str, str], body: bytes, method: str = "GET") -> None:
    """Never a server error; every error is the JSON error body."""
    assert status < 500, (status, body[:300])
    if status >= 400 and method != "HEAD":
        assert headers.get("Content-Type", "").startswith("application/json"), (status, body)
        found = json.loads(body)
        if "error" not in found:  # ingest with no valid item: the ingest result, all rejected
            assert status == 400 and (found["accepted"], found["duplicates"]) == (0, 0), found
            return
        error = found["error"]
        assert set(error) == {"code", "message", "details"}
        assert isinstance(error["code"], str) and isinstance(error["message"], str)


json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
)
json_tree = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=25,
)
FIELDS = (
    "event_id", "event_type", "timestamp", "artifact_id", "org_id", "stage", "duration_ms",
    "stage_started_at", "stage_completed_at", "error_code", "error_message", "metadata",
    "new_status", "voice_note_id", "surprise",
)  # fmt: skip
METADATA_KEYS = (
    "claim_count", "entity_count", "auto_resolved_count", "disambiguation_count", "draft_count",
    "transcript_word_count", "retry_attempt", "confidence", "transcript_duration_s",
    "ai_cost_usd", "ai_model", "source_channel", "avgConfidence",
)  # fmt: skip
awkward = st.sampled_from([
    0, -1, 2**63, 2**64, -(2**63) - 1, 1.7e308, -1.7e308, 1e-320, "", "   ", "\x00", "\ud7ff",
    "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2026-11-28T10:00:00",
    *EVENT_TYPES, *STAGES,
])  # fmt: skip


@st.composite
def mutated_event(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event with a few fields (or metadata keys) replaced by awkward values."""
    now_ms = int(time.time() * 1000)
    event: dict[str, Any] = {
        "event_id": f"fuzz-{draw(st.integers(0, 10**9))}",
        "event_type": draw(st.sampled_from(sorted(EVENT_TYPES))),
        "timestamp": now_ms - draw(st.integers(0, 3_600_000)),
        "artifact_id": draw(st.sampled_from(["a1", "a2", "a3"])),
        "org_id": draw(st.sampled_from(["o1", "o2", None])),
    }
    for field in draw(st.lists(st.sampled_from(FIELDS), max_size=3)):
        event[field] = draw(awkward | json_tree)
    if draw(st.booleans()):
        event["metadata"] = {
            key: draw(awkward | json_tree)
            for key in draw(st.lists(st.sampled_from(METADATA_KEYS), max_size=4))
        }
    return {k: v for k, v in event.items() if v is not None}


CONTENT_TYPES = st.sampled_from([
    "application/json", "application/x-ndjson", "application/ndjson", "text/plain", "",
    "application/json; charset=utf-16", "application/json; charset=utf-8", "multipart/form-data",
    "application/json;;;", "application/json; charset=", "\x7f",
])  # fmt: skip


@FUZZ
@given(
    items=st.lists(mutated_event() | json_tree, max_size=6),
    as_array=st.booleans(),
    ndjson=st.booleans(),
    compress=st.booleans(),
)
def test_fuzz_ingest_bodies(
    live: Live, items: list[Any], as_array: bool, ndjson: bool, compress: bool
) -> None:
    if ndjson:
        body = b"\n".join(json.dumps(item).encode() for item in items)
        headers = {"Content-Type": "application/x-ndjson"}
    else:
        payload = items if as_array or not items else items[0]
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
    if compress:
        body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
    check(*live.request("POST", "/v1/events", body, headers), method="POST")


@FUZZ
@given(
    body=st.binary(max_size=300),
    content_type=CONTENT_TYPES,
    encoding=st.sampled_from(["", "gzip", "identity", "br", "gzip, gzip", "GZIP"]),
    authorization=st.binary(max_size=40),
)
def test_fuzz_ingest_bytes_and_headers(
    live: Live, body: bytes, content_type: str, encoding: str, authorization: bytes
) -> None:
    headers: dict[str, Any] = {"Content-Type": content_type, "Authorization": authorization}
    if encoding:
        headers["Content-Encoding"] = encoding
    safe = {k: v for k, v in headers.items() if b"\r" not in _bytes(v) and b"\n" not in _bytes(v)}
    check(*live.request("POST", "/v1/events", body, safe), method="POST")


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode("latin-1", "replace")


GET_PATHS = sorted({path for method, path, _, _ in ROUTES if method == "GET"})
PARAM_NAMES = ("period", "start", "end", "org_id", "limit", "state", "cursor", "stage", "x")
param_value = (
    st.text(max_size=30)
    | st.integers(min_value=-(2**70), max_value=2**70).map(str)
    | st.sampled_from(["hourly", "daily", "in_flight", "stuck", "1e20", "-0", "NaN",
                       "2026-11-28T00:00:00Z", "0000-01-01T00:00:00Z", "%", "%ff"])
)  # fmt: skip


@FUZZ
@given(
    path=st.sampled_from(GET_PATHS),
    segment=st.text(max_size=20),
    query=st.lists(st.tuples(st.sampled_from(PARAM_NAMES) | st.text(max_size=8), param_value),
                   max_size=5),
    head=st.booleans(),
)  # fmt: skip
def test_fuzz_every_get_route(
    live: Live, path: str, segment: str, query: list[tuple[str, str]], head: bool
) -> None:
    filled = path.replace("{org_id}", urllib.parse.quote(segment or "x", safe=""))
    filled = filled.replace("{artifact_id}", urllib.parse.quote(segment or "x", safe=""))
    target = filled + ("?" + urllib.parse.urlencode(query) if query else "")
    method = "HEAD" if head and path in ("/metrics", "/healthz") else "GET"
    check(*live.request(method, target), method=method)


def test_fuzz_left_the_daemon_healthy(live: Live) -> None:
    """Runs after the fuzz tests of this module: nothing reached the catch-all."""
    assert live.request("GET", "/healthz")[0] == 200
    assert live.request("GET", "/readyz")[0] == 200
    status, _, body = live.request("GET", "/metrics")
    assert status == 200
    assert b"voxmon_http_internal_errors_total 0.0" in body
