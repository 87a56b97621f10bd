"""``AsyncEmitter``: the client for asyncio code, sending with aiohttp on the running loop.
Needs the ``aiohttp`` extra (``pip install 'voxmon-client[aiohttp]'``); importing
``voxmon_client`` alone never imports aiohttp."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from voxmon_client.base import BaseEmitter
from voxmon_client.outbox import ClientStats
from voxmon_client.wire import MAX_RESPONSE_BYTES, Response, Send

try:
    import aiohttp
except ModuleNotFoundError as exc:  # say which extra brings it, not only what is missing
    raise ModuleNotFoundError(
        "AsyncEmitter needs aiohttp: pip install 'voxmon-client[aiohttp]'", name=exc.name
    ) from exc


class AsyncEmitter(BaseEmitter):
    """asyncio emitter (aiohttp). ``emit`` is synchronous and must be called on the loop
    the emitter was started on: ``async with AsyncEmitter(url) as emitter: ...``."""

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        self._wakeup: asyncio.Event | None = None
        self._progress: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._wakeup, self._progress = asyncio.Event(), asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="voxmon-emitter")

    async def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every event emitted before the call is resolved; False on timeout."""
        target = self._flush_target()
        self._wake()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self.outbox.resolved < target and self._progress is not None:
                    self._progress.clear()
                    await self._progress.wait()
        return self.outbox.resolved >= target

    async def close(self, timeout: float = 10.0) -> ClientStats:
        """Flush for up to ``timeout`` seconds, then stop; what is left counts as abandoned."""
        self.outbox.closed = True
        if self.courier.close_at is None:
            self.courier.close_at = self.clock.monotonic() + timeout
        self._wake()
        if self._task is None:
            self.courier.abandon()
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), timeout + self.timeout_s)
        return self.stats()

    async def __aenter__(self) -> AsyncEmitter:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()

    async def _run(self) -> None:
        assert self._wakeup is not None and self._progress is not None
        timeout = aiohttp.ClientTimeout(
            total=None, connect=self.connect_timeout_s, sock_read=self.timeout_s
        )
        async with aiohttp.ClientSession(timeout=timeout, headers=self.headers) as session:
            while (step := self.courier.next()) is not None:
                if isinstance(step, Send):
                    answer = await post(session, self.url, step.body, self.timeout_s)
                    self.courier.done(answer)
                    self._progress.set()
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), step)
                self._wakeup.clear()
        self._progress.set()


async def post(
    session: aiohttp.ClientSession, url: str, body: bytes, deadline_s: float = 10.0
) -> Response:
    """POST once: the whole answer within ``deadline_s`` (the session's ``sock_read``
    timeout bounds each read, not a server trickling bytes), at most ``MAX_RESPONSE_BYTES``
    of its body read; any failure to get an answer is a ``Response`` the courier retries."""
    try:
        async with asyncio.timeout(deadline_s):
            return await _exchange(session, url, body)
    except TimeoutError:
        return Response(None, error=f"no complete answer within {deadline_s:g} s (timeout_s)")
    except Exception as exc:  # any failure to get an answer is retried, never fatal
        return Response(None, error=f"{type(exc).__name__}: {exc}")


async def _exchange(session: aiohttp.ClientSession, url: str, body: bytes) -> Response:
    async with session.post(url, data=body) as answer:
        data = bytearray()
        async for chunk in answer.content.iter_chunked(64 * 1024):
            data += chunk
            if len(data) > MAX_RESPONSE_BYTES:
                answer.close()  # the connection is dropped, not drained
                return Response(None, error=f"answer body over {MAX_RESPONSE_BYTES} bytes")
        return Response(answer.status, bytes(data), answer.headers.get("Retry-After"))
