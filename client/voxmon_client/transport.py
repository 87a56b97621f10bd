"""The synchronous emitter's HTTP: one keep-alive ``http.client`` connection, reopened after
any error; every failure to get an answer becomes a ``Response`` the courier retries."""

from __future__ import annotations

import http.client
import logging
import urllib.parse

from voxmon_client.wire import Response

log = logging.getLogger(__name__)

_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class HttpTransport:
    """One keep-alive ``http.client`` connection, reopened after any error."""

    def __init__(self, url: str, headers: dict[str, str], timeout_s: float) -> None:
        parts = urllib.parse.urlsplit(url)
        https = parts.scheme == "https"
        self._factory = http.client.HTTPSConnection if https else http.client.HTTPConnection
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port
        self._path, self._headers, self._timeout = parts.path, headers, timeout_s
        self._conn: http.client.HTTPConnection | None = None

    def post(self, body: bytes) -> Response:
        """POST once; a kept-alive connection the server has since closed is retried at
        once on a fresh one (safe: the server deduplicates on event_id)."""
        while True:
            reused = self._conn is not None
            try:
                return self._post_once(body)
            except Exception as exc:  # any failure to get an answer is retried, never fatal
                self.close()
                if not (reused and isinstance(exc, _STALE)):
                    return Response(None, error=f"{type(exc).__name__}: {exc}")
                log.debug("voxmon: stale keep-alive connection (%s); reconnecting", exc)

    def _post_once(self, body: bytes) -> Response:
        if self._conn is None:
            self._conn = self._factory(self._host, self._port, timeout=self._timeout)
        self._conn.request("POST", self._path, body, self._headers)
        answer = self._conn.getresponse()
        data = answer.read()
        if answer.will_close:
            self.close()
        return Response(answer.status, data, answer.getheader("Retry-After"))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
