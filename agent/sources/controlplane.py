"""What every RPA control-plane source shares: an OAuth2 client-credentials token, a request
budget per tenant, JSON GETs that honour 429/Retry-After, and one readable error per failure.

A control plane is somebody else's production API with published limits (UiPath Automation
Cloud: 100 GET/min on Jobs and QueueItems per tenant). So every request to a rate-limited
endpoint first takes a slot of the connection's budget (a sliding minute), a 429 holds the
whole connection (every endpoint) until its
`Retry-After` has passed, and a token is fetched again shortly before it expires. Secrets are
sent, never logged: errors carry the API's own message (its error envelope), not the request.
"""

from __future__ import annotations

import collections
import email.utils
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from .. import __version__

USER_AGENT = f"botwatch/{__version__}"
TOKEN_EARLY = 60.0  # seconds before its expiry a token is replaced
MAX_BODY = 64 * 1024 * 1024  # bytes of one response at most: a page, not a dump
MAX_RETRY_AFTER = 3600.0  # a Retry-After beyond this is read as this
TRANSIENT_RETRIES = (1.0, 2.0)  # seconds before trying a request that got a 5xx or no answer again
# the budget's sliding minute, a second longer: the server counts a request when it arrives, a
# little after it left here, so a budget equal to the server's limit would still meet its 429s
BUDGET_WINDOW = 61.0


class ApiError(Exception):
    """A request that did not give a usable answer; `status` is the HTTP status (0: none)."""

    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status


class AuthError(ApiError):
    """The identity server refused the credentials (a wrong or revoked secret, a scope not granted)."""


class BadAnswer(ApiError):
    """An answer that is not what the API documents (not JSON, too large, not the expected
    shape): bad input, counted as a parse error of its source."""


class Throttled(ApiError):
    """429: the control plane asks to wait `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float):
        super().__init__(message, 429)
        self.retry_after = retry_after


def envelope_message(body: bytes) -> str:
    """The readable part of a control plane's error body: `errorMessage` (identity),
    `message` (OData), `error.message` / `error_description` (OAuth2, Dataverse), else its start."""
    try:
        data = json.loads(body)
    except ValueError:
        return body[:200].decode("utf-8", "replace").strip() or "no details"
    if isinstance(data, dict):
        error = data.get("error")
        for value in (data.get("errorMessage"), data.get("message"), data.get("error_description"),
                      error.get("message") if isinstance(error, dict) else error):
            if isinstance(value, str) and value.strip(" ;"):
                return value.strip(" ;")[:500]
    return json.dumps(data)[:200]


def retry_after(value: str | None, default: float = 60.0) -> float:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return default
    if seconds != seconds:  # NaN
        return default
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


class RequestBudget:
    """At most `per_minute` requests in any 60 s, and none while held (after a 429). Shared by a
    source's pulls and the webhooks it receives (two threads)."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic):
        self.per_minute = per_minute
        self.clock = clock
        self.sent: collections.deque[float] = collections.deque()
        self.held_until = 0.0
        self.lock = threading.RLock()

    def hold(self, seconds: float) -> None:
        self.held_until = max(self.held_until, self.clock() + seconds)

    def wait_needed(self) -> float:
        """Seconds until the next request may go (0: now)."""
        with self.lock:
            now = self.clock()
            while self.sent and now - self.sent[0] >= BUDGET_WINDOW:
                self.sent.popleft()
            wait = max(0.0, self.held_until - now)
            if len(self.sent) >= self.per_minute:
                wait = max(wait, BUDGET_WINDOW - (now - self.sent[0]))
            return wait

    def wait_held(self, stopped: threading.Event) -> bool:
        """Waits while held (a request outside the budget still respects a 429); False if
        `stopped` was set meanwhile."""
        while True:
            wait = self.held_until - self.clock()
            if wait <= 0:
                return True
            if stopped.wait(min(wait, 5.0)):
                return False

    def take(self, stopped: threading.Event) -> bool:
        """Waits for a slot and takes it; False if `stopped` was set meanwhile."""
        while True:
            if self.try_take():
                return True
            if stopped.wait(min(self.wait_needed(), 5.0)):
                return False

    def try_take(self) -> bool:
        """Takes a slot if one is free now."""
        with self.lock:
            if self.wait_needed() > 0:
                return False
            self.sent.append(self.clock())
            return True


@dataclass
class Response:
    data: Any
    date: float | None  # the server's clock (Date header), Unix seconds


class Credentials(Protocol):
    """What a request carries to prove who asks: an OAuth2 bearer token, a platform's own
    token header (Automation Anywhere's X-Authorization), a static key (Robocorp's RC-WSKEY)."""

    def headers(self) -> dict[str, str]:
        """The headers to send (may fetch a token: raises AuthError, Throttled or ApiError)."""
        ...

    def invalidate(self) -> None:
        """The server refused what headers() gave (401): get a new one next time."""
        ...


class ClientCredentials:
    """An OAuth2 access token for `client_id`/`secret` at `token_url`, fetched again before expiry
    (UiPath's identity server, Microsoft Entra ID, Blue Prism's authentication server)."""

    def __init__(self, token_url: str, client_id: str, secret: Callable[[], str | None], scope: str,
                 timeout: float):
        self.token_url, self.client_id, self.secret, self.scope = token_url, client_id, secret, scope
        self.timeout = timeout
        self._token: str | None = None
        self._expires = 0.0

    def invalidate(self) -> None:
        self._token = None

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}"}

    def token(self) -> str:
        if self._token is not None and time.monotonic() < self._expires - TOKEN_EARLY:
            return self._token
        secret = self.secret()
        if not secret:
            raise AuthError("no client secret (the env: variable or file: it names is empty or missing)")
        form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": self.client_id,
                                       "client_secret": secret, "scope": self.scope}).encode()
        req = urllib.request.Request(self.token_url, data=form, method="POST", headers={
            "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json",
            "User-Agent": USER_AGENT})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                data = json.loads(r.read(MAX_BODY))
        except urllib.error.HTTPError as exc:
            body = exc.read(MAX_BODY)
            if exc.code == 429:
                raise Throttled(f"token endpoint: {envelope_message(body)}", retry_after(exc.headers.get("Retry-After")))
            if exc.code >= 500:
                raise ApiError(f"token endpoint answered {exc.code}: {envelope_message(body)}", exc.code) from None
            raise AuthError(f"token refused ({exc.code}): {envelope_message(body)}", exc.code) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise ApiError(f"token endpoint unreachable: {getattr(exc, 'reason', exc)}") from None
        if not isinstance(data, dict) or not isinstance(data.get("access_token"), str):
            raise ApiError("token endpoint answered without an access_token")
        expires_in = data.get("expires_in")
        lifetime = float(expires_in) if isinstance(expires_in, (int, float)) and expires_in > 0 else 3600.0
        self._token = data["access_token"]
        # a token shorter-lived than the early margin is used for half its life
        self._expires = time.monotonic() + (lifetime if lifetime > 2 * TOKEN_EARLY else TOKEN_EARLY + lifetime / 2)
        return self._token


class ApiClient:
    """JSON requests against one tenant's API, within its budget, with its credentials."""

    def __init__(self, base_url: str, credentials: Credentials, budget: RequestBudget, timeout: float,
                 on_request: Callable[[str], None] = lambda outcome: None,
                 decode: Callable[[bytes], Any] = json.loads):
        self.base_url = base_url.rstrip("/")
        self.decode = decode  # an answer's JSON (a platform may need a more tolerant reader)
        self.credentials = credentials
        self.budget = budget
        self.timeout = timeout
        self.on_request = on_request  # counts each request by outcome: ok, throttled, error, auth

    def url(self, path: str, params: dict[str, str] | None = None) -> str:
        url = path if path.startswith(("http://", "https://")) else f"{self.base_url}/{path.lstrip('/')}"
        if params:
            url += "?" + urllib.parse.urlencode(params, quote_via=urllib.parse.quote, safe="$,'/:")
        return url

    def get(self, url: str, headers: dict[str, str], stopped: threading.Event, budgeted: bool = True) -> Response | None:
        """The decoded JSON at `url`; None when stopped while waiting. A transient failure (a 5xx,
        no answer) is tried again after 1 s and 2 s. `budgeted`: the request takes a slot of the
        budget (the endpoints the control plane rate-limits); any request waits out a 429's hold."""
        return self.request("GET", url, headers, stopped, budgeted)

    def request(self, method: str, url: str, headers: dict[str, str], stopped: threading.Event,
                budgeted: bool = True, json_body: Any = None) -> Response | None:
        """`get`, for any method; `json_body` is sent as JSON (a query in a POST body: Automation
        Anywhere's activity list)."""
        for pause in (*TRANSIENT_RETRIES, None):
            try:
                return self._get_once(url, headers, stopped, budgeted, method=method, json_body=json_body)
            except (AuthError, Throttled):
                raise
            except ApiError as exc:
                if pause is None or not (exc.status == 0 or exc.status >= 500):
                    raise
            if stopped.wait(pause):
                return None
        raise AssertionError("unreachable")

    def get_now(self, url: str, headers: dict[str, str], timeout: float) -> Response | None:
        """One try within `timeout`, for an answer wanted at once (a webhook's): None when the
        budget has no slot free now (or a 429's hold is on), rather than waiting for one."""
        return self._get_once(url, headers, None, True, timeout)

    def _get_once(self, url: str, headers: dict[str, str], stopped: threading.Event | None,
                  budgeted: bool = True, timeout: float | None = None, method: str = "GET",
                  json_body: Any = None) -> Response | None:
        """One try (a 401 gets one new token and one more request); `stopped` None: without
        waiting for the budget."""
        payload = None if json_body is None else json.dumps(json_body).encode("utf-8")
        for attempt in (1, 2):
            try:
                auth = self.credentials.headers()
            except Throttled as exc:
                self.budget.hold(exc.retry_after)
                self.on_request("throttled")
                raise
            except AuthError:
                self.on_request("auth")
                raise
            except ApiError:
                self.on_request("error")
                raise
            if stopped is None:
                ready = self.budget.try_take() if budgeted else self.budget.held_until <= self.budget.clock()
            else:
                ready = self.budget.take(stopped) if budgeted else self.budget.wait_held(stopped)
            if not ready:
                return None
            sent = {**headers, **auth, "Accept": "application/json", "User-Agent": USER_AGENT}
            if payload is not None:
                sent["Content-Type"] = "application/json"
            req = urllib.request.Request(url, data=payload, method=method, headers=sent)
            try:
                with urllib.request.urlopen(req, timeout=timeout or self.timeout) as r:
                    raw = r.read(MAX_BODY + 1)
                    date = r.headers.get("Date")
            except urllib.error.HTTPError as exc:
                body = exc.read(MAX_BODY)
                if exc.code == 401 and attempt == 1:
                    self.credentials.invalidate()
                    continue
                if exc.code == 429:
                    wait = retry_after(exc.headers.get("Retry-After"))
                    self.budget.hold(wait)
                    self.on_request("throttled")
                    raise Throttled(f"throttled (429), waiting {wait:.0f} s: {envelope_message(body)}", wait) from None
                self.on_request("auth" if exc.code in (401, 403) else "error")
                cls = AuthError if exc.code in (401, 403) else ApiError
                raise cls(f"{exc.code}: {envelope_message(body)}", exc.code) from None
            except (urllib.error.URLError, OSError) as exc:
                self.on_request("error")
                raise ApiError(f"unreachable: {getattr(exc, 'reason', exc)}") from None
            if len(raw) > MAX_BODY:
                self.on_request("error")
                raise BadAnswer(f"answer larger than {MAX_BODY} bytes")
            try:
                data = self.decode(raw)
            except (ValueError, RecursionError):
                self.on_request("error")
                raise BadAnswer("answer is not JSON") from None
            self.on_request("ok")
            return Response(data, _http_date(date))
        raise AssertionError("unreachable")


def _http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
