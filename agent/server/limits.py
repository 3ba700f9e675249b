"""Bounds on what clients may send: request body size (ASGI middleware) and a rate per bot (or
per client address)."""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict


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


async def discard_body(receive) -> None:
    """Read a request's body and drop it, for an answer given without it: a client still sending
    gets that answer instead of a reset connection (BodyLimit, outside, bounds what is read)."""
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


class _TooLarge(Exception):
    pass


class RateLimiter:
    """A token bucket per key (a bot, a client address): `rate` tokens a second sustained, `burst`
    at once.

    The table is bounded by `max_keys`: a bucket that has filled up again is the same as no
    bucket, so once the table is full the idle full ones are dropped; if every bucket is still in
    use, the least recently used are (each of those starts again from a full bucket)."""

    def __init__(self, rate: float, burst: int, clock=time.monotonic, max_keys: int = 10_000):
        self.rate, self.burst, self.clock = rate, burst, clock
        self.max_keys = max(1, max_keys)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, counts: dict[str, int]) -> str | None:
        """Take `counts[key]` tokens for every key, all or nothing; the first key over its limit."""
        now = self.clock()
        with self._lock:
            levels = {}
            for key, n in counts.items():
                tokens = self._level(key, now)
                if tokens < n:
                    return key
                levels[key] = tokens - n
            for key, tokens in levels.items():
                self._buckets[key] = (tokens, now)
                self._buckets.move_to_end(key)
            if len(self._buckets) > self.max_keys:
                self._evict(now)
        return None

    def _level(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (float(self.burst), now))
        return min(float(self.burst), tokens + max(0.0, now - at) * self.rate)

    def _evict(self, now: float) -> None:
        """Down to 9/10 of `max_keys` (so that the scan is not repeated at every new key): the full
        buckets first, then the least recently used."""
        target = self.max_keys * 9 // 10
        for key in [k for k in self._buckets if self._level(k, now) >= self.burst]:
            del self._buckets[key]
        while len(self._buckets) > target:
            self._buckets.popitem(last=False)
