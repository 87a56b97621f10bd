"""What hostile input costs the daemon: a 5 KB gzip that inflates to 2.6 million items, a
batch of 10,000 invalid items, 30 KB of 10,000 ``{}`` items, and /healthz while four clients
send the gzip or the tiny items in a loop, each against a small valid request. Prints a
table; run with ``--quick`` for a smoke run.

    python benchmarks/hostile.py [--quick]
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _post(port: int, body: bytes, headers: dict[str, str]) -> tuple[int, float, int]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    started = time.perf_counter()
    conn.request("POST", "/v1/events", body, headers)
    response = conn.getresponse()
    size = len(response.read())
    conn.close()
    return response.status, (time.perf_counter() - started) * 1000, size


def _get(port: int, path: str) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    started = time.perf_counter()
    conn.request("GET", path)
    conn.getresponse().read()
    conn.close()
    return (time.perf_counter() - started) * 1000


def _event(i: int) -> dict[str, object]:
    return {
        "event_id": f"bench-{i}-{time.time_ns()}",
        "event_type": "artifact_received",
        "timestamp": int(time.time() * 1000),
        "artifact_id": f"a{i}",
    }


def _measure(repeat: int, run: object) -> tuple[float, int, int]:
    timings, status, size = [], 0, 0
    for i in range(repeat):
        status, ms, size = run(i)  # type: ignore[operator]
        timings.append(ms)
    return statistics.median(timings), status, size


def _healthz(port: int, count: int) -> tuple[float, float]:
    """(p50, max) ms of ``count`` sequential ``/healthz`` probes."""
    timings = [_get(port, "/healthz") for _ in range(count)]
    return statistics.median(timings), max(timings)


def _healthz_under(
    port: int, count: int, body: bytes, headers: dict[str, str]
) -> tuple[float, float]:
    """``_healthz`` while four clients POST ``body`` in a loop: how long one request's
    parsing holds the event loop shows in the probe's max."""
    stop = threading.Event()

    def attack() -> None:
        while not stop.is_set():
            _post(port, body, headers)

    attackers = [threading.Thread(target=attack) for _ in range(4)]
    for thread in attackers:
        thread.start()
    try:
        return _healthz(port, count)
    finally:
        stop.set()
        for thread in attackers:
            thread.join()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few repetitions (smoke run)")
    args = parser.parse_args()
    repeat = 3 if args.quick else 20
    items = 170_000 if args.quick else 1_700_000
    bomb = gzip.compress(b"[" + b",".join([b"0"] * items) + b"]", 9)
    invalid = json.dumps([{"event_id": f"x{i}", "event_type": "nope", "timestamp": 0}
                          for i in range(9_999)]).encode()  # fmt: skip
    tiny = b"[" + b",".join([b"{}"] * 10_000) + b"]"  # 30 KB: small, but 10,000 items
    json_headers = {"Content-Type": "application/json"}
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        daemon = subprocess.Popen(
            [sys.executable, "-m", "exporter", "serve", "--db", f"{tmp}/v.db", "--port",
             str(port), "--log-level", "WARNING"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            for _ in range(200):
                try:
                    if _get(port, "/readyz") and True:
                        break
                except OSError:
                    time.sleep(0.05)
            gz = {**json_headers, "Content-Encoding": "gzip"}
            small = [json.dumps([_event(i)]).encode() for i in range(repeat)]
            rows = [
                ("small valid request (1 event)",
                 _measure(repeat, lambda i: _post(port, small[i], json_headers))),
                (f"gzip of {items:,} items ({len(bomb):,} B)",
                 _measure(repeat, lambda i: _post(port, bomb, gz))),
                ("9,999 invalid items",
                 _measure(repeat, lambda i: _post(port, invalid, json_headers))),
                ("10,000 {} items (30 KB)",
                 _measure(repeat, lambda i: _post(port, tiny, json_headers))),
            ]  # fmt: skip
            quiet = _healthz(port, repeat * 5)
            loaded = _healthz_under(port, repeat * 5, bomb, gz)
            tiny_loaded = _healthz_under(port, repeat * 5, tiny, json_headers)
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)
    print(f"{'request':<40} {'status':>6} {'p50 ms':>9} {'answer B':>9}")
    for name, (ms, status, size) in rows:
        print(f"{name:<40} {status:>6} {ms:>9.2f} {size:>9,}")
    print(
        f"/healthz p50: {quiet[0]:.2f} ms idle, {loaded[0]:.2f} ms with 4 clients sending the gzip"
    )
    print(f"/healthz p50 / max ms: idle {quiet[0]:.2f} / {quiet[1]:.2f}")
    print(f"  4 clients sending the gzip: {loaded[0]:.2f} / {loaded[1]:.2f}")
    print(f"  4 clients sending 10,000 {{}} items: {tiny_loaded[0]:.2f} / {tiny_loaded[1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
