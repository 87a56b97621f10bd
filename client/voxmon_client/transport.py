"""The synchronous emitter's HTTP: one keep-alive ``http.client`` connection, reopened after
any error; every failure to get an answer becomes a ``Response`` the courier retries. The
connection is opened within ``connect_timeout_s``; the whole answer must arrive within
``timeout_s`` (a watchdog shuts the socket down, so a server trickling bytes cannot hold the
sender) and at most ``MAX_RESPONSE_BYTES`` of its body are read."""

from __future__ import annotations

import contextlib
import http.client
import logging
import socket
import threading
import urllib.parse
from collections.abc import Iterator

from voxmon_client.wire import MAX_RESPONSE_BYTES, Response

log = logging.getLogger(__name__)

_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class HttpTransport:
    """One keep-alive ``http.client`` connection, reopened after any error."""

    def __init__(
        self, url: str, headers: dict[str, str], timeout_s: float, connect_timeout_s: float = 5.0
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        https = parts.scheme == "https"
        self._factory = http.client.HTTPSConnection if https else http.client.HTTPConnection
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port
        self._path, self._headers, self._timeout = parts.path, headers, timeout_s
        self._connect_timeout = connect_timeout_s
        self._conn: http.client.HTTPConnection | None = None

    def post(self, body: bytes) -> Response:
        """POST once; a kept-alive connection the server has since closed is retried at
        once on a fresh one (safe: the server deduplicates on event_id)."""
        while True:
            reused = self._conn is not None
            watchdog = _Watchdog(self._timeout)
            try:
                return self._post_once(body, watchdog)
            except Exception as exc:  # any failure to get an answer is retried, never fatal
                self.close()
                if watchdog.fired:
                    return Response(None, error=watchdog.message)
                if not (reused and isinstance(exc, _STALE)):
                    return Response(None, error=f"{type(exc).__name__}: {exc}")
                log.debug("voxmon: stale keep-alive connection (%s); reconnecting", exc)

    def _post_once(self, body: bytes, watchdog: _Watchdog) -> Response:
        if self._conn is None:
            self._conn = self._factory(self._host, self._port, timeout=self._connect_timeout)
        conn = self._conn
        if conn.sock is None:
            conn.connect()
        conn.sock.settimeout(self._timeout)
        with watchdog.guarding(conn.sock):
            conn.request("POST", self._path, body, self._headers)
            answer = conn.getresponse()
            data = answer.read(MAX_RESPONSE_BYTES + 1)
        if len(data) > MAX_RESPONSE_BYTES:
            self.close()
            return Response(None, error=f"answer body over {MAX_RESPONSE_BYTES} bytes")
        if answer.will_close:
            self.close()
        return Response(answer.status, data, answer.getheader("Retry-After"))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class _Watchdog:
    """Shuts a socket down when an exchange outlives ``timeout_s``: the socket's own timeout
    bounds each read, not a server that sends one byte just inside it."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s, self.fired = timeout_s, False
        self.message = f"no complete answer within {timeout_s:g} s (timeout_s)"

    @contextlib.contextmanager
    def guarding(self, sock: socket.socket) -> Iterator[None]:
        timer = threading.Timer(self.timeout_s, self._fire, (sock,))
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    def _fire(self, sock: socket.socket) -> None:
        self.fired = True
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
