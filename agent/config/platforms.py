"""The `platforms:` section of the estate file: RPA control planes the agent pulls runs from.

Each entry is one connection (one Orchestrator tenant...); nothing is installed on robot
machines. Secrets are `env:NAME`, `file:/path` or literal, like the ping key, and never logged.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from .base import BotName, Duration, Regex, _Strict

CONNECTION_NAME = re.compile(r"^[a-z0-9_-]{1,32}$")
DEFAULT_UIPATH_SCOPE = "OR.Folders.Read OR.Jobs.Read OR.Execution.Read OR.Queues.Read OR.Robots.Read"
DEFAULT_BLUEPRISM_SCOPE = "bp-api bpserver"  # the pair every v7 endpoint requires


class ProcessRule(_Strict):
    """Which bot an Orchestrator process (release) is: `process` and `folder` are regular
    expressions matched in full against the process name and the folder's path."""

    process: Regex
    folder: Regex | None = None
    bot: BotName


class PlatformConnection(_Strict):
    """What every control-plane connection has: its name, where it is, which bot each of its
    automations is, and how often and how hard it is asked. A platform's own settings (auth,
    tenant...) are in its subclass."""

    name: str  # the connection's name: checkpoints, the `connection` label of the self-metrics
    url: str  # the API's base URL
    processes: list[ProcessRule] = []  # the first rule that matches names the bot
    # an automation no rule names becomes a bot of its own (its platform) when this is on; when
    # off its runs are not recorded and it is listed as unregistered
    auto_register: bool = False
    # folder pattern -> team, for bots registered from here; "folder" is the platform's grouping
    # (an Orchestrator folder, a Power Automate environment, a Blue Prism process group...)
    folder_teams: dict[str, str] = {}
    interval: Duration = 60.0  # between two pulls
    # budget on the rate-limited endpoints (Automation Cloud: 100 a minute on Jobs and QueueItems); a
    # standalone Orchestrator publishes no limit: what its operators allow
    requests_per_minute: int = Field(default=60, ge=1, le=100_000)
    page_size: int = Field(default=100, ge=1, le=1000)
    timeout: Duration = 30.0  # per request
    history: Duration = 86_400.0  # how far back the first pull reaches
    max_backoff: Duration = 900.0  # while unreachable, the wait between pulls doubles up to this

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not CONNECTION_NAME.match(v):
            raise ValueError(f"connection name {v!r} must match [a-z0-9_-] (1-32 characters)")
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return http_url(v)

    @field_validator("folder_teams")
    @classmethod
    def _teams(cls, v: dict[str, str]) -> dict[str, str]:
        for team in v.values():
            if len(team) > 64:
                raise ValueError(f"team {team[:20]!r}... is longer than 64 characters")
        return v


def http_url(v: str) -> str:
    """An http(s) URL with a host and no credentials in it."""
    parts = urlsplit(v)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{v!r} is not an http(s) URL")
    if parts.username or parts.password:
        raise ValueError("put credentials in the connection's secret settings, not in the URL")
    return v


class UiPathOrchestrator(PlatformConnection):
    """One Orchestrator tenant: Automation Cloud (`organization` and `tenant` set) or a
    standalone Orchestrator (neither set) with its own identity server."""

    organization: str | None = None
    tenant: str | None = None
    identity_url: str | None = None  # the token endpoint's base; default <url>/identity_ (cloud), <url>/identity
    client_id: str
    client_secret: SecretStr  # of an external application with client credentials and read scopes
    scope: str = DEFAULT_UIPATH_SCOPE
    folders: list[str] = []  # folder paths to read (shell patterns, `Finance/*`); none: all
    exclude_folders: list[str] = []
    stuck_pending_after: Duration = 1800.0  # a job Pending longer than this is stuck
    queues: bool = True  # read the folders' work queues (QueueDefinitions, QueueItems; scope OR.Queues.Read)
    robots: bool = True  # read the robot sessions (Sessions; scope OR.Robots.Read)
    webhook_secret: SecretStr | None = None  # takes Orchestrator's webhooks when set (docs/uipath-orchestrator.md)

    @field_validator("identity_url")
    @classmethod
    def _identity_url(cls, v: str | None) -> str | None:
        return None if v is None else http_url(v)

    @model_validator(mode="after")
    def _cloud_or_standalone(self) -> "UiPathOrchestrator":
        if (self.organization is None) != (self.tenant is None):
            raise ValueError("set both organization and tenant (Automation Cloud), or neither (standalone)")
        return self

    @property
    def cloud(self) -> bool:
        return self.organization is not None


class BluePrism(PlatformConnection):
    """One Blue Prism environment through its API (v7.1 and later): `url` is the API's base
    (`https://bp-api.example.com/api/v7`), `auth_url` its Authentication Server."""

    auth_url: str  # the token endpoint is <auth_url>/connect/token
    client_id: str
    client_secret: SecretStr  # of a service account client with client credentials (docs/blueprism.md)
    scope: str = DEFAULT_BLUEPRISM_SCOPE
    stuck_stage_after: Duration = 1800.0  # a session on one stage (or Pending) longer than this is stuck
    process_groups: bool = True  # read the process groups (/processes) for folder_teams and process rules
    queues: bool = True  # read the work queues and their items (/workqueues)
    resources: bool = True  # read the runtime resources (/resources)

    @field_validator("auth_url")
    @classmethod
    def _auth_url(cls, v: str) -> str:
        return http_url(v)


class AutomationAnywhere(PlatformConnection):
    """One Automation 360 Control Room, read as a user with an API key (docs/automationanywhere.md):
    the key is exchanged for a token at `/v1/authentication`, sent as `X-Authorization`."""

    username: str  # the Control Room user the API key belongs to
    api_key: SecretStr  # generated in the Control Room (My settings > Generate API-Key); never logged
    devices: bool = True  # read the devices (Bot Runners) and their status: /v2/devices/list


class PowerAutomate(PlatformConnection):
    """One Power Platform environment, read through its Dataverse Web API (`url`: the
    environment's organization URL, https://<org>.crm.dynamics.com) as an application user
    (an Entra ID app registration with client credentials)."""

    tenant_id: str  # the Entra ID tenant (directory) id or domain
    client_id: str
    client_secret: SecretStr  # of the app registration; never logged
    token_url: str | None = None  # default https://login.microsoftonline.com/<tenant_id>/oauth2/v2.0/token
    scope: str | None = None  # default <url>/.default
    environment: str | None = None  # the "folder" of processes rules and folder_teams; default the connection's name
    desktop_flows: bool = True  # desktop-flow runs (flowsessions)
    cloud_flows: bool = True  # cloud-flow runs (flowruns: solution flows only, 28 days by default)
    machines: bool = True  # machine health (flowmachines)
    callbacks: bool = False  # take desktop-flow completion callbacks (callbackUrl), each confirmed in Dataverse
    heartbeat_timeout: Duration = 600.0  # a machine silent longer than this is disconnected

    @field_validator("token_url")
    @classmethod
    def _token_url(cls, v: str | None) -> str | None:
        return None if v is None else http_url(v)

    @field_validator("tenant_id")
    @classmethod
    def _tenant(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9.-]{1,100}", v):
            raise ValueError(f"tenant_id {v[:40]!r} must be a directory id or domain")
        return v

    @property
    def folder(self) -> str:
        return self.environment or self.name


class RobocorpControlRoom(PlatformConnection):
    """One Robocorp (Sema4.ai) Control Room workspace, read with a workspace API key
    (`Authorization: RC-WSKEY <key>`). Its "folder" (rules, folder_teams) is
    `<workspace name>/<process name>`."""

    url: str = "https://cloud.robocorp.com/api/v1"  # the Control Room API's base URL
    workspace_id: str
    api_key: SecretStr  # a workspace API key with Processes.read_runs (docs/robocorp.md)
    step_runs: bool = True  # read the step runs of a run that ended unresolved (Processes.read_processes)
    work_items: bool = True  # read the failed work items of a run that ended unresolved (Processes.read_work_items)
    # the work items of every ended run, for its items processed and failed: one more request per run
    item_counts: bool = False
    workers: bool = True  # read the workers' states (Workers.read_workers)

    @field_validator("workspace_id")
    @classmethod
    def _workspace_id(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", v):
            raise ValueError(f"workspace_id {v[:70]!r} must be [A-Za-z0-9_-] (1-64 characters), "
                             "as Control Room shows it")
        return v


class Platforms(_Strict):
    uipath: list[UiPathOrchestrator] = []
    blueprism: list[BluePrism] = []
    automationanywhere: list[AutomationAnywhere] = []
    powerautomate: list[PowerAutomate] = []
    robocorp: list[RobocorpControlRoom] = []

    @model_validator(mode="after")
    def _unique_names(self) -> "Platforms":
        names = [c.name for c in (*self.uipath, *self.blueprism, *self.automationanywhere, *self.powerautomate,
                                  *self.robocorp)]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"connection names must be unique: {', '.join(dup)}")
        return self
