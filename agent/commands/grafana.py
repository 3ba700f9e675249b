"""`botwatch grafana push`: upload the bundled dashboards to a Grafana through its HTTP API.

Uses grafana-client (the grafana extra) with a service account token read from a file (never
printed). The folder is looked up by title and created when missing; every dashboard is saved
with overwrite=True, so pushing again replaces the previous version (Grafana keeps it in the
dashboard's history).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import urljoin, urlsplit, urlunsplit

from ..core.extras import require

DEFAULT_FOLDER = "botwatch"
PUSHING = "pushing dashboards to Grafana"  # the capability the grafana extra adds, as messages name it
TIMEOUT = 30.0


class PushError(Exception):
    """A push that could not be done; the message names the Grafana URL and what to check."""


@dataclass(frozen=True)
class Pushed:
    title: str
    uid: str
    url: str


def display_url(url: str) -> str:
    """The URL without credentials, for messages."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def read_token(path: str | Path, url: str) -> str:
    """The token from `path`, stripped; PushError naming the file and the URL if there is none."""
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise PushError(f"no token for Grafana at {display_url(url)}: token file {path} does not exist")
    except (OSError, UnicodeDecodeError) as exc:
        raise PushError(f"no token for Grafana at {display_url(url)}: cannot read token file {path}: "
                        f"{getattr(exc, 'strerror', None) or exc}")
    if not token:
        raise PushError(f"no token for Grafana at {display_url(url)}: token file {path} is empty")
    return token


def bundled_dashboards() -> list[dict]:
    """The dashboards shipped in botwatch.dashboards, in file-name order."""
    files = sorted((f for f in resources.files("botwatch.dashboards").iterdir() if f.name.endswith(".json")),
                   key=lambda f: f.name)
    return [json.loads(f.read_text(encoding="utf-8")) for f in files]


def _client(url: str, token: str, insecure: bool):
    from grafana_client import GrafanaApi

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PushError(f"--url must be an http:// or https:// URL, got {url!r}")
    prefix = parts.path.strip("/")
    if insecure:  # asked for: no warning per request
        warnings.filterwarnings("ignore", message="Unverified HTTPS request")
    return GrafanaApi(auth=token, host=parts.hostname, port=parts.port, protocol=parts.scheme,
                      url_path_prefix=f"{prefix}/" if prefix else "", verify=not insecure, timeout=TIMEOUT)


def _explain(exc: Exception, url: str, doing: str) -> PushError:
    from grafana_client.client import GrafanaClientError, GrafanaException, GrafanaServerError, GrafanaTimeoutError

    where = display_url(url)
    if isinstance(exc, GrafanaClientError) and exc.status_code in (401, 403):
        return PushError(f"Grafana at {where} refused the token (HTTP {exc.status_code}) while {doing}: check "
                         "--token-file (a service account token with the Editor role, or dashboards:write and "
                         "folders:create)")
    if isinstance(exc, GrafanaTimeoutError):
        return PushError(f"Grafana at {where} did not answer within {TIMEOUT:.0f}s while {doing}")
    if isinstance(exc, (GrafanaClientError, GrafanaServerError)):
        detail = exc.response.get("message") if isinstance(exc.response, dict) else None
        return PushError(f"Grafana at {where} answered HTTP {exc.status_code} while {doing}"
                         + (f": {detail}" if detail else ""))
    if isinstance(exc, GrafanaException):
        return PushError(f"cannot talk to Grafana at {where} while {doing}: {exc.message}")
    if isinstance(exc, ValueError):  # a 2xx answer that is not JSON: a proxy's page, not Grafana's API
        return PushError(f"{where} does not look like Grafana's HTTP API: its answer is not JSON (while {doing})")
    return PushError(f"cannot reach Grafana at {where} while {doing}: {_reason(exc)}")


def _reason(exc: BaseException) -> str:
    """The innermost readable cause of a connection error (refused, name unknown, certificate, ...)."""
    seen = exc
    while seen.__cause__ is not None or seen.__context__ is not None:
        seen = seen.__cause__ or seen.__context__
    text = str(seen) or type(seen).__name__
    return text if len(text) < 300 else text[:300] + "..."


def _find_or_create_folder(api, title: str) -> str:
    hits = api.search.search_dashboards(query=title, type_="dash-folder")
    if not isinstance(hits, list):
        raise _Unexpected("a folder search that is not a JSON list")
    exact = [h for h in hits if isinstance(h, dict) and h.get("title") == title and h.get("uid")]
    exact.sort(key=lambda h: bool(h.get("folderUid")))  # a top-level folder first
    if exact:
        return exact[0]["uid"]
    created = api.folder.create_folder(title)
    if not isinstance(created, dict) or not created.get("uid"):
        raise _Unexpected("a created folder without uid")
    return created["uid"]


class _Unexpected(Exception):
    """Grafana answered 2xx with something that is not what its API returns."""


def push(url: str, token: str, folder: str = DEFAULT_FOLDER, *, insecure: bool = False,
         dashboards: list[dict] | None = None) -> list[Pushed]:
    """Upload `dashboards` (default: the bundled ones) into `folder`; one Pushed per dashboard.
    MissingExtra without the grafana extra (grafana-client)."""
    require("grafana", PUSHING)
    from grafana_client.client import GrafanaException
    from niquests.exceptions import RequestException

    boards = dashboards if dashboards is not None else bundled_dashboards()
    api = _client(url, token, insecure)
    base = display_url(url) + "/"
    doing = f"looking up folder {folder!r}"
    try:
        folder_uid = _find_or_create_folder(api, folder)
        pushed = []
        for d in boards:
            doing = f"saving dashboard {d['uid']}"
            answer = api.dashboard.update_dashboard({
                "dashboard": {**d, "id": None},
                "folderUid": folder_uid,
                "overwrite": True,
                "message": "botwatch grafana push",
            })
            if not isinstance(answer, dict):
                raise _Unexpected("a saved dashboard that is not a JSON object")
            path = answer.get("url") or f"/d/{d['uid']}"
            pushed.append(Pushed(d["title"], d["uid"], urljoin(base, path)))
        return pushed
    except _Unexpected as exc:
        raise PushError(f"{display_url(url)} does not look like Grafana's HTTP API: got {exc} while {doing}") from None
    except (GrafanaException, RequestException, OSError, ValueError) as exc:  # HTTP, connection, JSON errors
        raise _explain(exc, url, doing) from None
