"""TLS and basic auth for the agent, configured like Prometheus' exporter web-config file:

    tls_server_config:
      cert_file: server.crt
      key_file: server.key
    basic_auth_users:
      alice: $2y$10$...   # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':')

and the guards every answer needs against browsers: security headers and the Host check
(docs/security.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import socket
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Iterable

import anyio
import anyio.to_thread
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.datastructures import Headers
from starlette.responses import JSONResponse

from .estate import ConfigError
from ..server.limits import RateLimiter, discard_body

log = logging.getLogger("botwatch.agent")


class _TLS(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cert_file: str
    key_file: str


class WebConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tls_server_config: _TLS | None = None
    basic_auth_users: dict[str, str] = {}

    def resolve(self, base: Path) -> "WebConfig":
        if self.tls_server_config:
            t = self.tls_server_config
            self.tls_server_config = _TLS(cert_file=str(base / t.cert_file), key_file=str(base / t.key_file))
        return self


def load_web_config(path: Path) -> WebConfig:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        cfg = WebConfig.model_validate(data)
    except OSError as exc:
        raise ConfigError([f"{path}:0: cannot read web config: {exc}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}:1: YAML syntax error: {exc}"]) from None
    except ValidationError as exc:
        raise ConfigError([f"{path}:1: {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]) from None
    for user, hashed in cfg.basic_auth_users.items():
        if not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            raise ConfigError([f"{path}:1: basic_auth_users.{user}: not a bcrypt hash"])
    return cfg.resolve(path.parent)


class BasicAuth:
    """Checks `Authorization: Basic` against bcrypt hashes, at the same cost for every user name.

    bcrypt is slow on purpose, so the agent guards its CPU: a (user, password) pair that was
    right is remembered (by its SHA-256, as the exporter toolkit does) and costs nothing again;
    one that was wrong is remembered too (the most recent MAX_REFUSED), so repeating it costs
    nothing either. Any other pair costs one bcrypt check: at most `attempt_burst` at once and
    one every `1 / attempts_per_second` seconds per client address (then 429), one check at a
    time for the whole agent. A user name that does not exist is checked against a dummy hash
    of the same cost, so that its answer takes as long as a wrong password's."""

    MAX_REMEMBERED = 1024  # right pairs (one a user, unless passwords change)
    MAX_REFUSED = 4096

    def __init__(self, users: dict[str, str], *, verify: Callable[[bytes, bytes], bool] | None = None,
                 attempts_per_second: float = 1 / 3, attempt_burst: int = 10, clock=time.monotonic):
        self.users = {u: h.encode() for u, h in users.items()}
        self._verify = verify or _bcrypt_check
        self._dummy = _dummy_hash(self.users.values())
        self._verified: OrderedDict[bytes, None] = OrderedDict()
        self._refused: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()
        self.attempts = RateLimiter(attempts_per_second, attempt_burst, clock, max_keys=4096)  # by client address
        self._limiter: anyio.CapacityLimiter | None = None

    def remembered(self, header: str | None) -> bool | None:
        """True or False when the answer is known without bcrypt (a malformed header, a pair
        seen before); None when it takes a check."""
        credentials = _credentials(header)
        if credentials is None:
            return False
        digest = hashlib.sha256(credentials).digest()
        with self._lock:
            if digest in self._verified:
                self._verified.move_to_end(digest)
                return True
            if digest in self._refused:
                return False
        return None

    def verify(self, header: str | None) -> bool:
        """The bcrypt check (slow); its answer is remembered."""
        credentials = _credentials(header)
        if credentials is None:
            return False
        user, _, password = credentials.partition(b":")
        hashed = self.users.get(user.decode("utf-8"))
        try:
            ok = self._verify(password, self._dummy if hashed is None else hashed) and hashed is not None
        except ValueError:  # a password bcrypt cannot take (more than 72 bytes): wrong
            ok = False
        digest = hashlib.sha256(credentials).digest()
        with self._lock:
            remember = self._verified if ok else self._refused
            remember[digest] = None
            if len(remember) > (self.MAX_REMEMBERED if ok else self.MAX_REFUSED):
                remember.popitem(last=False)
        return ok

    def check(self, header: str | None) -> bool:
        known = self.remembered(header)
        return self.verify(header) if known is None else known

    def may_try(self, client: str) -> bool:
        """False when `client` has used up its password checks for now."""
        return self.attempts.take({client: 1}) is None

    async def verify_async(self, header: str | None) -> bool:
        """verify() in a worker thread, one check at a time: the other threads stay free for
        scrapes and /healthz."""
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(1)
        return await anyio.to_thread.run_sync(self.verify, header, limiter=self._limiter)


def _credentials(header: str | None) -> bytes | None:
    """The `user:password` bytes of a Basic Authorization header, or None."""
    if not header or not header[:6].lower() == "basic ":
        return None
    try:
        credentials = base64.b64decode(header[6:].strip(), validate=True)
        credentials.decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    return credentials if b":" in credentials else None


def _bcrypt_check(password: bytes, hashed: bytes) -> bool:
    import bcrypt

    return bcrypt.checkpw(password, hashed)


def _dummy_hash(hashes) -> bytes:
    """A bcrypt hash of no one's password, at the highest cost of the users' hashes."""
    import bcrypt

    costs = [int(h.split(b"$")[2]) for h in hashes if h.count(b"$") >= 3 and h.split(b"$")[2].isdigit()]
    return bcrypt.hashpw(b"no such user", bcrypt.gensalt(rounds=min(max(costs, default=10), 31)))


class BasicAuthGate:
    """ASGI middleware: the paths `protects(path)` says need basic auth answer 401 without it
    and 429 (Retry-After) to a client that has used up its password checks."""

    def __init__(self, app, auth: BasicAuth, protects: Callable[[str], bool]):
        self.app, self.auth, self.protects = app, auth, protects

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not self.protects(scope["path"]):
            return await self.app(scope, receive, send)
        header = Headers(scope=scope).get("authorization")
        ok = self.auth.remembered(header)
        if ok is None:
            client = (scope.get("client") or ("unknown",))[0]
            if not self.auth.may_try(client):
                await discard_body(receive)
                answer = JSONResponse({"error": "too many failed logins", "detail": "retry later"}, status_code=429,
                                      headers={"Retry-After": str(max(1, round(1 / self.auth.attempts.rate)))})
                return await answer(scope, receive, send)
            ok = await self.auth.verify_async(header)
        if ok:
            return await self.app(scope, receive, send)
        await discard_body(receive)
        answer = JSONResponse({"error": "authentication required"}, status_code=401,
                              headers={"WWW-Authenticate": 'Basic realm="botwatch"'})
        await answer(scope, receive, send)


# -- browsers -----------------------------------------------------------------------------------

# The status page needs nothing but its own inline style; no script runs on any page of the agent.
CONTENT_SECURITY_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'; "
                           "form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)


class SecurityHeaders:
    """ASGI middleware: every answer says how a browser may use it (no framing, no sniffing, no
    script, no referrer), unless the answer sets a header of its own."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        return await self.app(scope, receive, send_with_headers)


def default_host_names(listen_host: str | None = None) -> list[str]:
    """The names the agent answers to without configuration: localhost (and *.localhost), this
    machine's name, and the listen address's name. Any IP address is accepted as well."""
    names = ["localhost", "*.localhost", socket.gethostname()]
    try:
        names.append(socket.getfqdn())
    except OSError:
        pass
    if listen_host and listen_host not in ("0.0.0.0", "::", ""):
        names.append(listen_host)
    return names


class HostCheck:
    """ASGI middleware against DNS rebinding: a request whose Host header names the agent by a
    name it was not told about gets 421, so that a web page of another site, its name pointed at
    this agent's address, cannot read it. An IP address is always accepted (a page at an IP
    address is no other site), and so is the address the connection was made to. `exempt(path)`:
    paths that need a key of their own (a page cannot know it)."""

    WARN_EVERY = 60.0  # seconds between two warnings in the log

    def __init__(self, app, names: Iterable[str], exempt: Callable[[str], bool] = lambda path: False):
        self.app, self.exempt = app, exempt
        names = [n.strip().lower().rstrip(".") for n in names if n and n.strip()]
        self.any = "*" in names
        self.exact = {n for n in names if not n.startswith("*.")}
        self.suffixes = tuple(n[1:] for n in names if n.startswith("*."))
        self._warned = 0.0

    def allows(self, host: str, scope) -> bool:
        name = _host_name(host)
        if name is None:
            return False
        if _is_ip(name) or name in self.exact or (bool(self.suffixes) and name.endswith(self.suffixes)):
            return True
        server = scope.get("server")
        return bool(server) and name == str(server[0]).lower()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or self.any or self.exempt(scope["path"]):
            return await self.app(scope, receive, send)
        host = Headers(scope=scope).get("host")
        if host is None or self.allows(host, scope):  # HTTP/1.0 without a Host: no browser
            return await self.app(scope, receive, send)
        now = time.monotonic()
        if now - self._warned >= self.WARN_EVERY:
            self._warned = now
            log.warning("refused a request for the host name %r (421): if this agent is reached by that name, "
                        "add it to agent.allowed_hosts", host[:255])
        await discard_body(receive)
        answer = JSONResponse({"error": "unknown host name", "detail": (
            "this agent answers to its IP addresses, localhost and the names in agent.allowed_hosts")},
            status_code=421)
        await answer(scope, receive, send)


def _host_name(host: str) -> str | None:
    """The name (or address) of a Host header, without its port, in lower case; None if malformed."""
    host = host.strip().lower()
    if host.startswith("["):
        name, bracket, rest = host[1:].partition("]")
        if not bracket or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
        return name
    name, colon, port = host.partition(":")
    if colon and not port.isdigit():
        return None
    return name.rstrip(".") or None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def keys_match(given: str, expected: str) -> bool:
    """Constant-time comparison of secrets."""
    return hmac.compare_digest(given.encode(), expected.encode())
