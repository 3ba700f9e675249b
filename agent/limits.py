"""Bounds on what clients may send: request body size (ASGI middleware) and a per-bot rate."""

from __future__ import annotations

import json
import threading
import time


class BodyLimit:
    """Answers 413 with a JSON body when a request body is larger than `max_bytes`, whether
    it announces its length or streams it."""

    def __init__(self, app, max_bytes: int, on_reject=None):
        self.app, self.max_bytes, self.on_reject = app, max_bytes, on_reject

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._drain(receive)
            return await self._reject(send)
        seen, too_large, answered = 0, False, False

        async def limited_receive():
            nonlocal seen, too_large
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    too_large = True
                    raise _TooLarge()
            return message

        async def guarded_send(message):
            # the app may turn _TooLarge into an answer of its own (FastAPI: 400 "error parsing
            # the body"): once the body is too large, the 413 below is the answer
            nonlocal answered
            if not too_large:
                answered = True
                await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _TooLarge:
            pass
        if too_large and not answered:
            await self._drain(receive)
            await self._reject(send)

    async def _drain(self, receive, cap: int = 64 * 1024 * 1024) -> None:
        """Read and discard the rest of the body (up to `cap`), so that the client, still
        sending, gets the 413 instead of a broken pipe."""
        seen = 0
        while seen < cap:
            message = await receive()
            if message["type"] != "http.request":
                return
            seen += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    async def _reject(self, send):
        if self.on_reject:
            self.on_reject()
        body = json.dumps({"error": "request body too large", "max_bytes": self.max_bytes}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


class RateLimiter:
    """A token bucket per bot: `rate` events a second sustained, `burst` at once."""

    def __init__(self, rate: float, burst: int, clock=time.monotonic):
        self.rate, self.burst, self.clock = rate, burst, clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, counts: dict[str, int]) -> str | None:
        """Take `counts[bot]` tokens for every bot, all or nothing; the first bot over its limit."""
        now = self.clock()
        with self._lock:
            levels = {}
            for bot, n in counts.items():
                tokens, at = self._buckets.get(bot, (float(self.burst), now))
                tokens = min(float(self.burst), tokens + (now - at) * self.rate)
                if tokens < n:
                    return bot
                levels[bot] = tokens - n
            for bot, tokens in levels.items():
                self._buckets[bot] = (tokens, now)
        return None
