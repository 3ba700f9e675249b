"""A stand-in UiPath Orchestrator for the tests: a real HTTP server on 127.0.0.1 speaking the OData
API of Automation Cloud or of a standalone Orchestrator, with its identity server, folders,
limits, faults on demand and signed webhooks.

Built from the facts and samples in the controlplanes corpus (its README's UiPath section and
SOURCES.md):
- entity sets, field names and enums: uipathcli `definitions/orchestrator.yaml` (UiPath.WebApi
  20.0), the excerpt `uipath/uipathcli_orchestrator-openapi_schema-excerpt.yaml` (JobDto,
  QueueItemDto, QueueDefinitionDto, SessionDto, RobotDto, FolderDto, LogDto,
  ProcessingExceptionDto, JobErrorDto); enums compare by name or by their number in that order;
- error bodies: the real envelopes of `uipath/uipathorch_error-envelopes_real.tsv` (folder 1100,
  take 1009, "does not exist" 1002, the `errorMessage` scope envelope) and their
  `{message, errorCode, traceId}` shape for the others;
- token flow, folder header, paging, the 100/min limit on Jobs and QueueItems, job states and
  webhook body and signature: the README's UiPath section (uipathcli, UiPath's docs);
- RobotLogs `Id` 0, as uipathcli's mock page (cloud log storage).

Decided here where the sources are silent; none of it is verified against a real Orchestrator:
- A missing, unknown or non-numeric `X-UIPATH-OrganizationUnitId` gets the real errorCode 1100
  envelope with status 400: the status was not recorded with the envelope; 400 says the request
  names no folder it may use, which a client must treat as permanent for that folder (neither
  retry nor fetch a new token).
- The token endpoint answers RFC 6749 errors at 400 (`invalid_client` for a wrong or revoked
  secret, `invalid_scope`, `unsupported_grant_type`), as IdentityServer, on which UiPath's
  identity server is built, does. The real `errorMessage` envelope ("Scope(s) '...' is(are)
  invalid. Expect to have ...") is what an API answers a token that lacks the scope it needs:
  403 here. Tokens are self-contained, so `revoke_secret()` leaves issued ones valid until expiry.
- An expired, unknown or missing bearer token: 401 with an empty body and `WWW-Authenticate:
  Bearer error="invalid_token"`, the ASP.NET Core JwtBearer answer.
- `$top` above 100 on QueueItems: the real 1009 envelope; above 1000 elsewhere: the OData
  library's MaxTop message. Without `$top`, a page stops silently at 100 (QueueItems) or 1000.
  `@odata.nextLink` only with `next_link_page` (the docs describe none).
- The bodies of 429 (with `Retry-After`), 500 (JSON envelope), 503 (an HTML page, as a gateway
  sends one) and 404; ReleaseDto and the expanded Robot/Release (not in the excerpt: RobotDto's
  fields, and the webhook docs' Release{Id, Key, ProcessKey} plus the release's own).
Not implemented: writes (StartJobs, ...), `$metadata`, `X-UIPATH-FolderPath-Encoded`, nested
`$expand` options, `$apply`/`$search`, the Machine and ReviewerUser navigations, ROPC
authentication, webhook retries and the circuit breaker. Filter syntax: `odata_filter`.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import http.client
import json
import math
import random
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Callable, Literal, Union

from odata_filter import (BOOL, DATETIME, GUID, INT, STRING, UNTYPED, FieldType, ODataQueryError, compile_filter,
                          compile_orderby, parse_datetime, sort_records)

Record = dict[str, Any]
Ref = Union[Record, int]  # a stored record or its Id

# ------------------------------------------------------------------ enums (orchestrator.yaml order)
JOB_STATES = ("Pending", "Running", "Stopping", "Terminating", "Faulted", "Successful", "Stopped", "Suspended",
              "Resumed")
JOB_PRIORITIES = ("Low", "Normal", "High")
SOURCE_TYPES = ("Manual", "Schedule", "Agent", "Queue", "StudioWeb", "IntegrationTrigger", "StudioDesktop",
                "AutomationOpsPipelines", "Apps", "SAP", "HttpTrigger", "HttpTriggerCallback", "RobotAPI",
                "CommandLine", "RobotNetAPI", "Autopilot", "TestManager", "AgentService", "ProcessOrchestration",
                "PluginEcosystem", "PerformanceTesting", "AgentHub", "ApiWorkflow")
JOB_TYPES = ("Unattended", "Attended", "ServerlessGeneric")
STOP_STRATEGIES = ("SoftStop", "Kill")
RUNTIME_TYPES = ("NonProduction", "Attended", "Unattended", "Development", "Studio", "RpaDeveloper", "StudioX",
                 "CitizenDeveloper", "Headless", "StudioPro", "RpaDeveloperPro", "TestAutomation", "AutomationCloud",
                 "Serverless", "AutomationKit", "ServerlessTestAutomation", "AutomationCloudTestAutomation",
                 "AttendedStudioWeb", "Hosting", "AssistantWeb", "ProcessOrchestration", "AgentService", "AppTest",
                 "PerformanceTest")
PROCESS_TYPES = ("Undefined", "Process", "ProcessOrchestration", "WebApp", "Agent", "TestAutomationProcess", "Api",
                 "MCPServer", "BusinessRules", "CaseManagement")
REMOTE_CONTROL = ("None", "ReadOnly", "Full")
SERVERLESS_JOB_TYPES = ("RobotJob", "WebApp", "LoadTest", "StudioWebDesigner", "PublishStudioProject", "JsApi",
                        "PythonCodedAgent", "MCPServer")
QUEUE_ITEM_STATUSES = ("New", "InProgress", "Failed", "Successful", "Abandoned", "Retried", "Deleted")
REVIEW_STATUSES = ("None", "InReview", "Verified", "Retried")
EXCEPTION_TYPES = ("ApplicationException", "BusinessException")
QUEUE_PRIORITIES = ("High", "Normal", "Low")
SESSION_STATES = ("Available", "Busy", "Disconnected", "Unknown")
LICENSE_ERROR_CODES = ("NoLicense", "LicenseExpired", "LicenseUnregistered", "NoAvailableLicenses",
                       "NotEnoughAvailableSlots", "NotEnoughRuntimeLicenses", "LicenseIsAlreadyInUse",
                       "InvalidRequest", "SlotsExceedLicenseLimit", "RuntimeDisabled", "ExternalNotSupported",
                       "UsageExceedsLicenseLimit", "LicenseNotCompatible")
LOG_LEVELS = ("Trace", "Debug", "Info", "Warn", "Error", "Fatal")
TERMINAL_STATES = {"Faulted", "Successful", "Stopped"}

FOLDER_ERROR = "Folder does not exist or the user does not have access to the folder."
TAKE_ERROR = "The field take must be between 0 and 100"
INVALID_QUERY = "The query specified in the URI is not valid. "
DTO_NAMESPACE = "UiPath.Server.Configuration.OData."
DEFAULT_SCOPES = frozenset({"OR.Folders.Read", "OR.Jobs.Read", "OR.Queues.Read", "OR.Robots.Read",
                            "OR.Execution.Read", "OR.Monitoring.Read"})
POPULATE_ANCHOR = datetime(2024, 6, 3, 12, 0, tzinfo=timezone.utc)


# --------------------------------------------------------------------------------------- schema
@dataclass(frozen=True)
class Dto:
    name: str
    order: tuple[str, ...]  # every property, in the schema's order
    fields: dict[str, FieldType]  # primitive, enum and open properties
    navigation: dict[str, str]  # property -> the entity set it points into (only with $expand)
    complex: dict[str, str]  # property -> the Dto of its inline value


_KINDS = {"": STRING, "i": INT, "b": BOOL, "d": DATETIME, "g": GUID, "o": UNTYPED}


def _dto(name: str, spec: str, enums: dict[str, tuple[str, ...]] | None = None,
         navigation: dict[str, str] | None = None, complex: dict[str, str] | None = None) -> Dto:
    """`spec`: properties in order, `Name:kind` with kind i, b, d (DateTimeOffset), g (Guid),
    o (open), e (enum, members in `enums`), n (navigation), c (complex); none: a string."""
    order, fields = [], {}
    for item in spec.split():
        prop, _, kind = item.partition(":")
        order.append(prop)
        if kind == "e":
            fields[prop] = FieldType(name + prop, (enums or {})[prop])
        elif kind in _KINDS:
            fields[prop] = FieldType(_KINDS[kind])
    return Dto(name, tuple(order), fields, navigation or {}, complex or {})


DTOS = {dto.name: dto for dto in (
    _dto("FolderDto", "Key:g DisplayName FullyQualifiedName Description FolderType:e IsPersonal:b ProvisionType:e "
         "PermissionModel:e ParentId:i ParentKey:g FeedType:e Id:i",
         {"FolderType": ("Standard", "Personal", "Virtual", "Solution", "DebugSolution"),
          "ProvisionType": ("Manual", "Automatic"), "PermissionModel": ("InheritFromTenant", "FineGrained"),
          "FeedType": ("Undefined", "Processes", "Libraries", "PersonalWorkspace", "FolderHierarchy")}),
    _dto("JobDto", "Key:g StartTime:d EndTime:d State:e SubState JobPriority:e SpecificPriorityValue:i Robot:n "
         "Release:n ResourceOverwrites Source SourceType:e BatchExecutionKey:g Info CreationTime:d "
         "StartingScheduleId:i ReleaseName Type:e InputArguments InputFile:g EnvironmentVariables OutputArguments "
         "OutputFile:g HostMachineName HasMediaRecorded:b HasVideoRecorded:b PersistenceId:g ResumeVersion:i "
         "StopStrategy:e RuntimeType:e RequiresUserInteraction:b ReleaseVersionId:i EntryPointPath "
         "OrganizationUnitId:i OrganizationUnitFullyQualifiedName Reference ProcessType:e ProfilingOptions "
         "ResumeOnSameContext:b LocalSystemAccount OrchestratorUserIdentity RemoteControlAccess:e "
         "StartingTriggerId:g MaxExpectedRunningTimeSeconds:i ServerlessJobType:e ParentJobKey:g ResumeTime:d "
         "LastModificationTime:d JobError:c ErrorCode FpsProperties TraceId ParentSpanId RootSpanId "
         "AutopilotForRobots:o FpsContext Id:i",
         {"State": JOB_STATES, "JobPriority": JOB_PRIORITIES, "SourceType": SOURCE_TYPES, "Type": JOB_TYPES,
          "StopStrategy": STOP_STRATEGIES, "RuntimeType": RUNTIME_TYPES, "ProcessType": PROCESS_TYPES,
          "RemoteControlAccess": REMOTE_CONTROL, "ServerlessJobType": SERVERLESS_JOB_TYPES},
         {"Robot": "Robots", "Release": "Releases"}, {"JobError": "JobErrorDto"}),
    _dto("JobErrorDto", "code title detail category status:i timestamp:d"),
    _dto("QueueDefinitionDto", "Key:g Name Description MaxNumberOfRetries:i AcceptAutomaticallyRetry:b "
         "RetryAbandonedItems:b EnforceUniqueReference:b Encrypted:b SpecificDataJsonSchema OutputDataJsonSchema "
         "AnalyticsDataJsonSchema CreationTime:d ProcessScheduleId:i SlaInMinutes:i RiskSlaInMinutes:i ReleaseId:i "
         "IsProcessInCurrentFolder:b FoldersCount:i OrganizationUnitId:i OrganizationUnitFullyQualifiedName Tags:o "
         "Id:i"),
    _dto("QueueItemDto", "QueueDefinitionId:i QueueDefinition:n ProcessingException:c Error:o Encrypted:b "
         "SpecificContent:o Output:o OutputData Analytics:o AnalyticsData Status:e ReviewStatus:e ReviewerUserId:i "
         "Key:g Reference ProcessingExceptionType:e DueDate:d RiskSlaDate:d Priority:e Robot:n RobotId:i "
         "CreatorJobKey:g ExecutorJobKey:g DeferDate:d StartProcessing:d EndProcessing:d "
         "SecondsInPreviousAttempts:i AncestorId:i AncestorUniqueKey:g RetryNumber:i ManualAncestorId:i "
         "ManualAncestorUniqueKey:g ManualRetryNumber:i UniqueKey:g HasVideoRecorded:b SpecificData CreationTime:d "
         "Progress RowVersion ParentOperationId OperationId OrganizationUnitId:i OrganizationUnitFullyQualifiedName "
         "Id:i",
         {"Status": QUEUE_ITEM_STATUSES, "ReviewStatus": REVIEW_STATUSES, "ProcessingExceptionType": EXCEPTION_TYPES,
          "Priority": QUEUE_PRIORITIES},
         {"QueueDefinition": "QueueDefinitions", "Robot": "Robots"},
         {"ProcessingException": "ProcessingExceptionDto"}),
    _dto("ProcessingExceptionDto", "Reason Details Type:e AssociatedImageFilePath CreationTime:d",
         {"Type": EXCEPTION_TYPES}),
    _dto("SessionDto", "Robot:n HostMachineName MachineId:i MachineName State:e Job:n ReportingTime:d Info "
         "IsUnresponsive:b LicenseErrorCode:e OrganizationUnitId:i FolderName RobotSessionType:e Version Source:e "
         "DebugModeExpirationDate:d UpdateInfo:o InstallationId:g Platform:e EndpointDetection Id:i",
         {"State": SESSION_STATES, "LicenseErrorCode": LICENSE_ERROR_CODES,
          "RobotSessionType": ("LongLived", "Ephemeral"), "Source": ("Assistant", "StudioWeb", "StudioDesktop"),
          "Platform": ("Unknown", "Windows", "Linux", "OSX")},
         {"Robot": "Robots", "Job": "Jobs"}),
    _dto("RobotDto", "LicenseKey MachineName MachineId:i Name Username ExternalName Description Type:e HostingType:e "
         "ProvisionType:e Password CredentialStoreId:i UserId:i Enabled:b CredentialType:e Environments:o "
         "RobotEnvironments ExecutionSettings:o IsExternalLicensed:b LimitConcurrentExecution:b "
         "LastModificationTime:d LastModifierUserId:i CreationTime:d CreatorUserId:i Id:i",
         {"Type": RUNTIME_TYPES, "HostingType": ("Standard", "Floating"), "ProvisionType": ("Manual", "Automatic"),
          "CredentialType": ("Default", "SmartCard", "NCipher", "SafeNet", "NoCredential")}),
    _dto("ReleaseDto", "Key:g ProcessKey ProcessVersion IsLatestVersion:b IsProcessDeleted:b Description Name "
         "EnvironmentId:i EnvironmentName InputArguments ProcessType:e IsAttended:b JobPriority:e "
         "SpecificPriorityValue:i OrganizationUnitId:i OrganizationUnitFullyQualifiedName CreationTime:d "
         "LastModificationTime:d Id:i",
         {"ProcessType": PROCESS_TYPES, "JobPriority": JOB_PRIORITIES}),
    _dto("LogDto", "Level:e WindowsIdentity ProcessName TimeStamp:d Message JobKey:g RawMessage RobotName "
         "HostMachineName MachineId:i MachineKey:g RuntimeType:e Id:i",
         {"Level": LOG_LEVELS, "RuntimeType": RUNTIME_TYPES}),
)}


@dataclass(frozen=True)
class EntitySet:
    name: str
    dto: str
    scope: str  # the OAuth scope it needs, or the same with `.Read`
    folder_scoped: bool
    max_top: int
    singular: str  # for "<X> does not exist."


SETS = {s.name: s for s in (
    EntitySet("Folders", "FolderDto", "OR.Folders", False, 1000, "Folder"),
    EntitySet("Jobs", "JobDto", "OR.Jobs", True, 1000, "Job"),
    EntitySet("QueueDefinitions", "QueueDefinitionDto", "OR.Queues", True, 1000, "QueueDefinition"),
    EntitySet("QueueItems", "QueueItemDto", "OR.Queues", True, 100, "QueueItem"),
    EntitySet("Sessions", "SessionDto", "OR.Robots", True, 1000, "Session"),
    EntitySet("Robots", "RobotDto", "OR.Robots", True, 1000, "Robot"),
    EntitySet("Releases", "ReleaseDto", "OR.Execution", True, 1000, "Release"),
    EntitySet("RobotLogs", "LogDto", "OR.Monitoring", True, 1000, "RobotLog"),
)}
RATE_LIMITED = ("Jobs", "QueueItems")
QUERY_OPTIONS = {"$filter", "$orderby", "$top", "$skip", "$count", "$select", "$expand"}


def iso_z(moment: datetime) -> str:
    """As the API writes a time on GET: UTC, milliseconds without trailing zeros, `Z`."""
    moment = moment.astimezone(timezone.utc)
    fraction = f"{moment.microsecond // 1000:03d}".rstrip("0")
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


def webhook_signature(secret: str, body: bytes) -> str:
    """`X-UiPath-Signature`: Base64(HMAC-SHA256(key = secret as UTF-8, message = raw body))."""
    return base64.b64encode(hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()).decode("ascii")


def _trace_id() -> str:
    return f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-00"


def _envelope(message: str, error_code: int = 0) -> dict[str, Any]:
    return {"message": message, "errorCode": error_code, "traceId": _trace_id()}


def _ref(value: Ref) -> int:
    return int(value["Id"]) if isinstance(value, dict) else int(value)


# ------------------------------------------------------------------------------------- requests
@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]  # decoded; a token request's form, its client_secret replaced by ***
    headers: dict[str, str]  # as sent, the bearer token replaced by ***
    at: float = 0.0  # when it arrived, on the fake's `clock`

    def header(self, name: str) -> str | None:
        """A header's value, its name matched ignoring case as HTTP does."""
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def _json(status: int, data: Any, headers: dict[str, str] | None = None, odata: bool = False) -> _Reply:
    ctype = ("application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8"
             if odata else "application/json; charset=utf-8")
    return _Reply(status, json.dumps(data).encode("utf-8"), {"Content-Type": ctype, **(headers or {})})


@dataclass
class _Token:
    expires: float  # on the fake's clock
    expires_wall: datetime
    scopes: frozenset[str]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeOrchestrator


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.fake._serve(self)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


# ------------------------------------------------------------------------------------------ fake
class FakeOrchestrator:
    """One tenant. `flavour` "cloud": token at `{url}/identity_/connect/token`, OData under
    `{url}/{org}/{tenant}/orchestrator_/odata/`; "standalone": `{url}/identity/connect/token` and
    `{url}/odata/`. `clock` (monotonic seconds) drives token expiry and the rate window;
    `wall_clock` the server's own time (the `Date` header, default times of new data)."""

    def __init__(self, *, flavour: Literal["cloud", "standalone"] = "cloud", org: str = "botwatchorg",
                 tenant: str = "DefaultTenant", tenant_id: int = 1, client_id: str = "botwatch-monitor",
                 client_secret: str = "s3cret-value", granted_scopes: frozenset[str] = DEFAULT_SCOPES,
                 token_ttl: float = 3600.0, jobs_per_minute: int | None = 100, rate_window: float = 60.0,
                 fail_every: int = 0, next_link_page: int = 0, seed: int = 0,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self.flavour, self.org, self.tenant, self.tenant_id = flavour, org, tenant, tenant_id
        self.client_id, self.client_secret, self.granted_scopes = client_id, client_secret, granted_scopes
        self.token_ttl, self.jobs_per_minute, self.rate_window = token_ttl, jobs_per_minute, rate_window
        self.fail_every, self.next_link_page = fail_every, next_link_page
        self.clock, self.wall_clock = clock, wall_clock
        self.requests: list[RecordedRequest] = []
        self.counts: collections.Counter[str] = collections.Counter()  # per entity set, and "token"
        self.throttled: collections.Counter[str] = collections.Counter()  # 429s served per entity set
        self.faults_served = 0
        self.webhooks_sent: list[tuple[str, str, int]] = []  # (url, Type, status)
        self._lock = threading.RLock()
        self._rng = random.Random(seed)
        self._tokens: dict[str, _Token] = {}
        self._revoked = False
        self._odata_seen = 0
        self._queued_errors: list[tuple[str, int, int]] = []
        self._queued_bodies: list[list[Any]] = []  # [path fragment, requests to let pass, body, content type]
        self._windows: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self._rows: dict[str, list[Record]] = {name: [] for name in SETS}
        self._index: dict[str, dict[int, Record]] = {name: {} for name in SETS}
        self._next_id = {"Folders": 1001, "Jobs": 310001, "QueueDefinitions": 4001, "QueueItems": 820001,
                         "Sessions": 6001, "Robots": 2001, "Releases": 3001, "Machines": 501}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle and addresses
    def start(self) -> FakeOrchestrator:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-orchestrator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> FakeOrchestrator:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def api_url(self) -> str:
        """The base the OData paths hang from: `{api_url}/odata/Jobs`."""
        return f"{self.url}/{self.org}/{self.tenant}/orchestrator_" if self.flavour == "cloud" else self.url

    @property
    def token_url(self) -> str:
        identity = "identity_" if self.flavour == "cloud" else "identity"
        return f"{self.url}/{identity}/connect/token"

    def odata_url(self, entity_set: str) -> str:
        return f"{self.api_url}/odata/{entity_set}"

    # ------------------------------------------------------------------------- test controls
    def revoke_secret(self) -> None:
        """Further token requests fail (`invalid_client`); tokens already issued live on until expiry."""
        with self._lock:
            self._revoked = True

    def error_once(self, path_fragment: str, status: int, retry_after: int = 1) -> None:
        """The next request whose path contains `path_fragment` gets `status` (queued, in order)."""
        with self._lock:
            self._queued_errors.append((path_fragment, status, retry_after))

    def answer_once(self, path_fragment: str, body: bytes, *, after: int = 0,
                    content_type: str = "application/json; charset=utf-8") -> None:
        """A 200 with `body` as it is (not JSON, a `value` that is no list... as a broken proxy or
        a schema change might send) for one request whose path contains `path_fragment`: the one
        after `after` such requests have been answered normally."""
        with self._lock:
            self._queued_bodies.append([path_fragment, after, body, content_type])

    @property
    def throttled_total(self) -> int:
        return sum(self.throttled.values())

    # --------------------------------------------------------------------------------- serving
    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        split = urllib.parse.urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length > 0 else b""
        headers = {k: v for k, v in handler.headers.items()}
        with self._lock:
            reply = self._respond(handler.command, urllib.parse.unquote(split.path), split.query, headers, body)
        handler.send_response_only(reply.status)
        handler.send_header("Date", format_datetime(self.wall_clock().astimezone(timezone.utc), usegmt=True))
        reply.headers.setdefault("Content-Type", "application/json; charset=utf-8")
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(reply.body)))
        handler.end_headers()
        handler.wfile.write(reply.body)

    def _record(self, method: str, path: str, query: dict[str, str], headers: dict[str, str]) -> None:
        shown = dict(headers)
        for name in shown:
            if name.lower() == "authorization":
                scheme = shown[name].partition(" ")[0]
                shown[name] = f"{scheme} ***"
        self.requests.append(RecordedRequest(method, path, query, shown, self.clock()))

    def _respond(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> _Reply:
        params = urllib.parse.parse_qsl(query, keep_blank_values=True)
        if path == urllib.parse.urlsplit(self.token_url).path:
            form = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
            self._record(method, path, {k: "***" if k == "client_secret" else v for k, v in form.items()}, headers)
            self.counts["token"] += 1
            return self._queued_error(path) or self._token(method, headers, form)
        self._record(method, path, dict(params), headers)
        prefix = urllib.parse.urlsplit(self.api_url).path + "/odata/"
        if not path.startswith(prefix):
            return _json(404, _envelope("The requested resource was not found."))
        name, _, key = path[len(prefix):].partition("(")
        if name not in SETS or (key and not (key.endswith(")") and key[:-1].isdigit())):
            return _json(404, _envelope("The requested resource was not found."))
        es = SETS[name]
        self.counts[name] += 1
        queued = self._queued_error(path) or self._queued_body(path)
        if queued:
            return queued
        self._odata_seen += 1
        if self.fail_every and self._odata_seen % self.fail_every == 0:
            self.faults_served += 1  # the 1st, 3rd, ... such failure is a 500, the others a 503
            return self._fault(500 if (self._odata_seen // self.fail_every) % 2 else 503)
        denied = self._authorize(headers, es)
        if denied:
            return denied
        if method != "GET":
            return _json(405, _envelope(f"The requested resource does not support http method '{method}'."))
        if es.name in RATE_LIMITED and not key and self.jobs_per_minute is not None:
            throttled = self._rate_limit(es.name)
            if throttled:
                return throttled
        folder: int | None = None
        if es.folder_scoped:
            value = next((v for k, v in headers.items() if k.lower() == "x-uipath-organizationunitid"), "")
            folder = int(value) if value.strip().isdigit() else None
            if folder is None or folder not in self._index["Folders"]:
                return _json(400, _envelope(FOLDER_ERROR, 1100))
        return self._query(es, folder, params, path, int(key[:-1]) if key else None)

    def _queued_error(self, path: str) -> _Reply | None:
        for i, (fragment, status, retry_after) in enumerate(self._queued_errors):
            if fragment in path:
                del self._queued_errors[i]
                self.faults_served += 1
                if status == 429:
                    self.throttled[path.rsplit("/", 1)[-1]] += 1
                    return _json(429, _envelope("Too many requests."), {"Retry-After": str(retry_after)})
                if status == 401:
                    return _Reply(401, b"", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
                return self._fault(status)
        return None

    def _queued_body(self, path: str) -> _Reply | None:
        for i, queued in enumerate(self._queued_bodies):
            if queued[0] in path:
                if queued[1] > 0:
                    queued[1] -= 1
                    return None
                del self._queued_bodies[i]
                self.faults_served += 1
                return _Reply(200, queued[2], {"Content-Type": queued[3]})
        return None

    @staticmethod
    def _fault(status: int) -> _Reply:
        if status == 503:
            page = (b"<html><head><title>503 Service Unavailable</title></head>"
                    b"<body><h1>Service Unavailable</h1></body></html>")
            return _Reply(503, page, {"Content-Type": "text/html; charset=utf-8"})
        return _json(status, _envelope("An error has occurred."))

    # ------------------------------------------------------------------------- identity server
    def _token(self, method: str, headers: dict[str, str], form: dict[str, str]) -> _Reply:
        no_store = {"Cache-Control": "no-store, no-cache, max-age=0", "Pragma": "no-cache"}
        if method != "POST":
            return _Reply(405, b"", {"Allow": "POST"})
        ctype = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        if not ctype.lower().startswith("application/x-www-form-urlencoded"):
            return _json(400, {"error": "invalid_request"}, no_store)
        client_id, secret = form.get("client_id"), form.get("client_secret")
        basic = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        if basic.lower().startswith("basic "):  # RFC 6749 2.3.1: the client may authenticate with HTTP Basic
            try:
                decoded = base64.b64decode(basic[6:].strip() + "==").decode("utf-8", "replace")
            except ValueError:
                decoded = ""
            client_id, _, secret = (urllib.parse.unquote(part) for part in decoded.partition(":"))
        if form.get("grant_type") != "client_credentials":
            return _json(400, {"error": "unsupported_grant_type"}, no_store)
        if self._revoked or client_id != self.client_id or secret != self.client_secret:
            return _json(400, {"error": "invalid_client"}, no_store)
        requested = form.get("scope", "").split() or sorted(self.granted_scopes)
        if not set(requested) <= self.granted_scopes:
            return _json(400, {"error": "invalid_scope"}, no_store)
        issued = self.wall_clock()
        expires_in = max(1, math.ceil(self.token_ttl))
        token = self._jwt(issued, expires_in, requested)
        self._tokens[token] = _Token(self.clock() + self.token_ttl, issued + timedelta(seconds=expires_in),
                                     frozenset(requested))
        return _json(200, {"access_token": token, "expires_in": expires_in, "token_type": "Bearer",
                           "scope": " ".join(requested)}, no_store)

    def _jwt(self, issued: datetime, expires_in: int, scopes: list[str]) -> str:
        def part(data: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
        now = int(issued.timestamp())
        claims = {"iss": self.token_url.rsplit("/connect/", 1)[0], "nbf": now, "iat": now, "exp": now + expires_in,
                  "aud": "UiPath.Orchestrator", "client_id": self.client_id, "scope": scopes,
                  "jti": uuid.uuid4().hex.upper()}
        signature = base64.urlsafe_b64encode(uuid.uuid4().bytes * 8).rstrip(b"=").decode()
        return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.{signature}"

    def _authorize(self, headers: dict[str, str], es: EntitySet) -> _Reply | None:
        auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return _Reply(401, b"", {"WWW-Authenticate": "Bearer"})
        token = self._tokens.get(value.strip())
        if token is None:
            return _Reply(401, b"", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if self.clock() >= token.expires:
            expired = token.expires_wall.strftime("%m/%d/%Y %H:%M:%S")
            return _Reply(401, b"", {"WWW-Authenticate": 'Bearer error="invalid_token", '
                                     f"error_description=\"The token expired at '{expired}'\""})
        if not {es.scope, es.scope + ".Read"} & token.scopes:
            message = (f"Scope(s) '{','.join(sorted(token.scopes))}' is(are) invalid. "
                       f"Expect to have '{es.scope}' or '{es.scope}.Read'. ")
            return _json(403, {"errorMessage": message})
        return None

    def _rate_limit(self, name: str) -> _Reply | None:
        window, now = self._windows[name], self.clock()
        while window and now - window[0] >= self.rate_window:
            window.popleft()
        assert self.jobs_per_minute is not None
        if len(window) >= self.jobs_per_minute:
            self.throttled[name] += 1
            wait = max(1, math.ceil(window[0] + self.rate_window - now))
            return _json(429, _envelope("Too many requests."), {"Retry-After": str(wait)})
        window.append(now)
        return None

    # ------------------------------------------------------------------------------------ OData
    def _query(self, es: EntitySet, folder: int | None, params: list[tuple[str, str]], path: str,
               key: int | None) -> _Reply:
        options: dict[str, str] = {}
        dto = DTOS[es.dto]
        try:
            for name, value in params:
                if name.startswith("$"):
                    if name not in QUERY_OPTIONS:
                        raise ODataQueryError(f"The query parameter '{name}' is not supported.")
                    if name in options:
                        raise ODataQueryError(f"Query option '{name}' was specified more than once, "
                                              "but it must be specified at most once.")
                    options[name] = value
            top, skip = _count_option(options, "$top"), _count_option(options, "$skip")
            if es.name == "QueueItems" and top is not None and not 0 <= top <= 100:
                return _json(400, _envelope(TAKE_ERROR, 1009))
            for name, number in (("$top", top), ("$skip", skip)):
                if number is not None and number < 0:
                    raise ODataQueryError(f"Invalid value '{number}' for {name} query option found. "
                                          f"The {name} query option requires a non-negative integer value.")
            if top is not None and top > es.max_top:
                raise ODataQueryError(f"The limit of '{es.max_top}' for Top query has been exceeded. "
                                      f"The value from the incoming request is '{top}'.")
            if options.get("$count", "false") not in ("true", "false"):
                raise ODataQueryError(f"'{options['$count']}' is not a valid count option.")
            resolve: Callable[[str], FieldType] = lambda p: self._resolve(dto, p)
            keep = compile_filter(options["$filter"], resolve, self._value) if "$filter" in options else None
            order = compile_orderby(options["$orderby"], resolve, self._value) if "$orderby" in options else []
            select = self._select(dto, options.get("$select"))
            expand = self._expand(dto, options.get("$expand"))
        except ODataQueryError as exc:
            return _json(400, _envelope(INVALID_QUERY + str(exc)))
        rows = [r for r in self._rows[es.name] if folder is None or folder in r["_folders"]]
        context = f"{self.api_url}/odata/$metadata#{es.name}"
        if key is not None:
            found = next((r for r in rows if r["Id"] == key), None)
            if found is None:
                return _json(404, _envelope(f"{es.singular} does not exist.", 1002))
            return _json(200, {"@odata.context": context + "/$entity", **self._shape(dto, found, select, expand)},
                         odata=True)
        matched = [r for r in rows if keep is None or keep(r)]
        sort_records(matched, order)
        start = skip or 0
        wanted = matched[start:] if top is None else matched[start:start + top]
        size = min(es.max_top, self.next_link_page) if self.next_link_page else es.max_top
        page = wanted[:size]
        answer: dict[str, Any] = {"@odata.context": context}
        if options.get("$count") == "true":
            answer["@odata.count"] = len(matched)
        answer["value"] = [self._shape(dto, r, select, expand) for r in page]
        if self.next_link_page and len(wanted) > len(page):
            following = dict(params)
            following["$skip"] = str(start + len(page))
            if top is not None:
                following["$top"] = str(top - len(page))
            answer["@odata.nextLink"] = (self.url + path + "?" + urllib.parse.urlencode(
                following, quote_via=urllib.parse.quote, safe="$,'/:"))
        return _json(200, answer, odata=True)

    def _resolve(self, dto: Dto, path: str) -> FieldType:
        segments = path.split("/")
        for i, segment in enumerate(segments):
            last = i == len(segments) - 1
            if segment in dto.navigation or segment in dto.complex:
                if last:
                    return FieldType(UNTYPED)
                target = dto.complex.get(segment) or SETS[dto.navigation[segment]].dto
                dto = DTOS[target]
            elif segment in dto.fields and last:
                return dto.fields[segment]
            else:
                break
        raise ODataQueryError(f"Could not find a property named '{segment}' on type '{DTO_NAMESPACE}{dto.name}'.")

    def _value(self, record: Any, path: str) -> Any:
        value = record
        for segment in path.split("/"):
            if not isinstance(value, dict):
                return None
            link = value.get("_" + segment)
            value = self._index[link[0]].get(link[1]) if link else value.get(segment)
        return value

    @staticmethod
    def _select(dto: Dto, text: str | None) -> set[str] | None:
        if text is None or text.strip() == "*":
            return None
        chosen = {name.strip() for name in text.split(",")}
        for name in chosen:
            if name not in dto.order or name in dto.navigation:
                raise ODataQueryError(f"Could not find a property named '{name}' on type '{DTO_NAMESPACE}{dto.name}'.")
        return chosen

    @staticmethod
    def _expand(dto: Dto, text: str | None) -> list[str]:
        if text is None:
            return []
        chosen = [name.strip() for name in text.split(",")]
        for name in chosen:
            if "(" in name:
                raise ODataQueryError("Nested $expand options are not supported by this service.")
            if name not in dto.navigation:
                raise ODataQueryError(f"Property '{name}' on type '{DTO_NAMESPACE}{dto.name}' is not a navigation "
                                      "property or complex property. Only navigation properties can be expanded.")
        return chosen

    def _shape(self, dto: Dto, record: Record, select: set[str] | None, expand: list[str]) -> Record:
        out = {name: record.get(name) for name in dto.order
               if name not in dto.navigation and (select is None or name in select)}
        for name in expand:
            linked = self._value(record, name)
            target = DTOS[SETS[dto.navigation[name]].dto]
            out[name] = self._shape(target, linked, None, []) if linked is not None else None
        copied: Record = json.loads(json.dumps(out))  # a copy: later updates do not reach an answer being written
        return copied

    # ------------------------------------------------------------------------------------- data
    def _new_id(self, kind: str) -> int:
        value = self._next_id[kind]
        self._next_id[kind] += 1
        return value

    def _uuid(self, rng: random.Random | None = None) -> str:
        return str(uuid.UUID(int=(rng or self._rng).getrandbits(128), version=4))

    def _store(self, set_name: str, record: Record, folders: set[int]) -> Record:
        dto = DTOS[SETS[set_name].dto]
        full: Record = {name: None for name in dto.order}
        full.update(record)
        full["_folders"] = folders
        self._rows[set_name].append(full)
        if set_name != "RobotLogs":
            self._index[set_name][full["Id"]] = full
        return full

    def _folder(self, folder: Ref) -> Record:
        return self._index["Folders"][_ref(folder)]

    def add_folder(self, display_name: str, *, parent: Ref | None = None, key: str | None = None) -> Record:
        with self._lock:
            parent_rec = self._folder(parent) if parent is not None else None
            full_name = f"{parent_rec['FullyQualifiedName']}/{display_name}" if parent_rec else display_name
            return self._store("Folders", {
                "Key": key or self._uuid(), "DisplayName": display_name, "FullyQualifiedName": full_name,
                "Description": None, "FolderType": "Standard", "IsPersonal": False, "ProvisionType": "Automatic",
                "PermissionModel": "FineGrained", "ParentId": parent_rec["Id"] if parent_rec else None,
                "ParentKey": parent_rec["Key"] if parent_rec else None, "FeedType": "Processes",
                "Id": self._new_id("Folders")}, set())

    def add_release(self, folder: Ref, name: str, *, version: str = "1.0.3", description: str = "",
                    created: datetime | None = None) -> Record:
        with self._lock:
            f = self._folder(folder)
            at = iso_z(created or self.wall_clock() - timedelta(days=30))
            return self._store("Releases", {
                "Key": self._uuid(), "ProcessKey": name, "ProcessVersion": version, "IsLatestVersion": True,
                "IsProcessDeleted": False, "Description": description, "Name": name, "EnvironmentId": None,
                "EnvironmentName": "", "InputArguments": None, "ProcessType": "Process", "IsAttended": False,
                "JobPriority": "Normal", "SpecificPriorityValue": 45, "OrganizationUnitId": f["Id"],
                "OrganizationUnitFullyQualifiedName": f["FullyQualifiedName"], "CreationTime": at,
                "LastModificationTime": at, "Id": self._new_id("Releases")}, {f["Id"]})

    def add_robot(self, folders: Ref | list[Ref], name: str, *, machine_name: str, username: str | None = None,
                  robot_type: str = "Unattended", created: datetime | None = None) -> Record:
        """A robot (Name at most 19 characters, as the schema allows) assigned to the folders."""
        with self._lock:
            ids = {_ref(f) for f in (folders if isinstance(folders, list) else [folders])}
            at = iso_z(created or self.wall_clock() - timedelta(days=60))
            return self._store("Robots", {
                "LicenseKey": None, "MachineName": machine_name, "MachineId": self._new_id("Machines"),
                "Name": name[:19], "Username": username or f"CORP\\{name[:12]}", "ExternalName": None,
                "Description": "", "Type": robot_type, "HostingType": "Standard", "ProvisionType": "Manual",
                "Password": None, "CredentialStoreId": None, "UserId": None, "Enabled": True,
                "CredentialType": "Default", "Environments": [], "RobotEnvironments": "", "ExecutionSettings": {},
                "IsExternalLicensed": False, "LimitConcurrentExecution": True, "LastModificationTime": at,
                "LastModifierUserId": None, "CreationTime": at, "CreatorUserId": 1, "Id": self._new_id("Robots")},
                ids)

    def add_session(self, robot: Ref, folder: Ref, *, state: str = "Available", job: Ref | None = None,
                    reported: datetime | None = None, is_unresponsive: bool = False) -> Record:
        with self._lock:
            r, f = self._index["Robots"][_ref(robot)], self._folder(folder)
            record = self._store("Sessions", {
                "HostMachineName": r["MachineName"], "MachineId": r["MachineId"], "MachineName": r["MachineName"],
                "State": state, "ReportingTime": iso_z(reported or self.wall_clock()), "Info": None,
                "IsUnresponsive": is_unresponsive, "LicenseErrorCode": None, "OrganizationUnitId": f["Id"],
                "FolderName": f["DisplayName"], "RobotSessionType": "LongLived", "Version": "23.10.4.0",
                "Source": None, "DebugModeExpirationDate": None, "UpdateInfo": None,
                "InstallationId": self._uuid(), "Platform": "Windows", "EndpointDetection": None,
                "Id": self._new_id("Sessions")}, {f["Id"]})
            record["_Robot"] = ("Robots", r["Id"])
            if job is not None:
                record["_Job"] = ("Jobs", _ref(job))
            return record

    def add_job(self, folder: Ref, release: Ref, *, state: str = "Successful", robot: Ref | None = None,
                created: datetime | None = None, started: datetime | None = None, ended: datetime | None = None,
                info: str | None = None, job_type: str = "Unattended", source_type: str = "Manual",
                source: str | None = None, priority: str = "Normal", stop_strategy: str | None = None,
                output_arguments: str | None = None, key: str | None = None) -> Record:
        """A job with the fields a real one in `state` has: Pending has no StartTime, robot or
        HostMachineName; a job not ended has no EndTime; an ended one has EndTime and Info."""
        if state not in JOB_STATES:
            raise ValueError(f"unknown job state {state!r}")
        with self._lock:
            f, rel = self._folder(folder), self._index["Releases"][_ref(release)]
            now = self.wall_clock()
            if state in TERMINAL_STATES:
                ended = ended or now
                started = started or ended - timedelta(seconds=47)
            elif state != "Pending":
                started = started or now - timedelta(seconds=8)
            created = created or (started - timedelta(seconds=2) if started else now)
            robot_rec = None
            if state != "Pending":
                robot_id = _ref(robot) if robot is not None else next(
                    (r["Id"] for r in self._rows["Robots"] if f["Id"] in r["_folders"]), None)
                robot_rec = self._index["Robots"].get(robot_id) if robot_id is not None else None
            if info is None:
                info = {"Successful": "Job completed", "Stopped": "Job canceled",
                        "Faulted": "System.Exception: Job faulted"}.get(state)
            times = [t for t in (created, started if state != "Pending" else None, ended) if t]
            record = self._store("Jobs", {
                "Key": key or self._uuid(), "StartTime": iso_z(started) if state != "Pending" and started else None,
                "EndTime": iso_z(ended) if state in TERMINAL_STATES and ended else None, "State": state,
                "SubState": None, "JobPriority": priority, "SpecificPriorityValue": 45,
                "Source": source or ("Manual" if source_type == "Manual" else f"{rel['Name']} {source_type}"),
                "SourceType": source_type, "BatchExecutionKey": self._uuid(), "Info": info,
                "CreationTime": iso_z(created), "StartingScheduleId": 7001 if source_type == "Schedule" else None,
                "ReleaseName": rel["Name"], "Type": job_type, "InputArguments": None,
                "OutputArguments": output_arguments if state == "Successful" else None,
                "HostMachineName": robot_rec["MachineName"] if robot_rec else None, "HasMediaRecorded": False,
                "HasVideoRecorded": False, "ResumeVersion": None,
                "StopStrategy": stop_strategy or ("SoftStop" if state in ("Stopped", "Stopping") else None),
                "RuntimeType": "Unattended" if job_type == "Unattended" else "Attended",
                "RequiresUserInteraction": job_type == "Attended", "ReleaseVersionId": rel["Id"] * 10 + 1,
                "EntryPointPath": "Main.xaml", "OrganizationUnitId": f["Id"],
                "OrganizationUnitFullyQualifiedName": f["FullyQualifiedName"], "Reference": "",
                "ProcessType": "Process", "ResumeOnSameContext": False, "LocalSystemAccount": "",
                "OrchestratorUserIdentity": None, "RemoteControlAccess": "None", "ServerlessJobType": None,
                "LastModificationTime": iso_z(max(times)), "Id": self._new_id("Jobs")}, {f["Id"]})
            record["_Release"] = ("Releases", rel["Id"])
            if robot_rec is not None:
                record["_Robot"] = ("Robots", robot_rec["Id"])
            return record

    def update_job(self, job: Ref, *, state: str, info: str | None = None, at: datetime | None = None,
                   robot: Ref | None = None) -> Record:
        """A state change as Orchestrator records it: StartTime (and a robot) on leaving Pending,
        EndTime and Info on ending, LastModificationTime bumped past its previous value."""
        if state not in JOB_STATES:
            raise ValueError(f"unknown job state {state!r}")
        with self._lock:
            record = self._index["Jobs"][_ref(job)]
            now = at or self.wall_clock()
            previous = record["LastModificationTime"]
            if previous:
                now = max(now, parse_datetime(previous) + timedelta(milliseconds=1))
            if state not in ("Pending", "Stopped") and record["State"] == "Pending":  # a canceled one never started
                record["StartTime"] = iso_z(now)
                robot_id = _ref(robot) if robot is not None else next(
                    (r["Id"] for r in self._rows["Robots"] if record["OrganizationUnitId"] in r["_folders"]), None)
                if robot_id is not None:
                    record["_Robot"] = ("Robots", robot_id)
                    record["HostMachineName"] = self._index["Robots"][robot_id]["MachineName"]
            record["State"] = state
            if state in TERMINAL_STATES:
                record["EndTime"] = iso_z(now)
                record["Info"] = info or {"Successful": "Job completed", "Stopped": "Job canceled"}.get(
                    state, "System.Exception: Job faulted")
                if state == "Stopped" and not record["StopStrategy"]:
                    record["StopStrategy"] = "SoftStop"
            elif info is not None:
                record["Info"] = info
            record["LastModificationTime"] = iso_z(now)
            return record

    def add_queue(self, folder: Ref, name: str, *, sla_minutes: int = 0, risk_sla_minutes: int = 0,
                  max_retries: int = 1, release: Ref | None = None, created: datetime | None = None) -> Record:
        with self._lock:
            f = self._folder(folder)
            return self._store("QueueDefinitions", {
                "Key": self._uuid(), "Name": name, "Description": "", "MaxNumberOfRetries": max_retries,
                "AcceptAutomaticallyRetry": max_retries > 0, "RetryAbandonedItems": False,
                "EnforceUniqueReference": False, "Encrypted": False,
                "CreationTime": iso_z(created or self.wall_clock() - timedelta(days=30)), "ProcessScheduleId": None,
                "SlaInMinutes": sla_minutes, "RiskSlaInMinutes": risk_sla_minutes,
                "ReleaseId": _ref(release) if release is not None else None, "IsProcessInCurrentFolder": True,
                "FoldersCount": 1, "OrganizationUnitId": f["Id"],
                "OrganizationUnitFullyQualifiedName": f["FullyQualifiedName"], "Tags": [],
                "Id": self._new_id("QueueDefinitions")}, {f["Id"]})

    def add_queue_item(self, queue: Ref, *, status: str = "New", reference: str | None = None,
                       priority: str = "Normal", created: datetime | None = None, started: datetime | None = None,
                       ended: datetime | None = None, exception_type: str | None = None, reason: str | None = None,
                       details: str | None = None, retry_number: int = 0, ancestor: Ref | None = None,
                       specific_content: dict[str, Any] | None = None, robot: Ref | None = None) -> Record:
        """An item with the times and exception its status implies (ProcessingException only when
        failed; SLA dates from the queue's SLA)."""
        if status not in QUEUE_ITEM_STATUSES:
            raise ValueError(f"unknown queue item status {status!r}")
        with self._lock:
            q = self._index["QueueDefinitions"][_ref(queue)]
            created = created or self.wall_clock() - timedelta(minutes=5)
            processed = status not in ("New", "Deleted")
            if processed:
                started = started or created + timedelta(seconds=30)
            if status in ("Failed", "Successful", "Retried"):
                ended = ended or (started or created) + timedelta(seconds=42)
            failed = status in ("Failed", "Retried")
            exception_type = (exception_type or "ApplicationException") if failed else None
            parent = self._index["QueueItems"][_ref(ancestor)] if ancestor is not None else None
            robot_id = _ref(robot) if robot is not None else next(
                (r["Id"] for r in self._rows["Robots"] if q["OrganizationUnitId"] in r["_folders"]), None)
            record = self._store("QueueItems", {
                "QueueDefinitionId": q["Id"], "Encrypted": False,
                "ProcessingException": {
                    "Reason": reason or "Application error", "Details": details or reason or "Application error",
                    "Type": exception_type, "AssociatedImageFilePath": None,
                    "CreationTime": iso_z(ended or created)} if failed else None,
                "SpecificContent": specific_content or {"InvoiceNumber": reference or "INV-0001"},
                "Output": {} if status == "Successful" else None,
                "OutputData": "{}" if status == "Successful" else None,
                "Status": status, "ReviewStatus": "None", "ReviewerUserId": None,
                "Key": parent["Key"] if parent else self._uuid(), "Reference": reference,
                "ProcessingExceptionType": exception_type,
                "DueDate": iso_z(created + timedelta(minutes=q["SlaInMinutes"])) if q["SlaInMinutes"] else None,
                "RiskSlaDate": iso_z(created + timedelta(minutes=q["RiskSlaInMinutes"])) if q["RiskSlaInMinutes"]
                else None,
                "Priority": priority, "RobotId": robot_id if processed else None, "DeferDate": None,
                "StartProcessing": iso_z(started) if processed and started else None,
                "EndProcessing": iso_z(ended) if ended else None,
                "SecondsInPreviousAttempts": int(((ended or created) - (started or created)).total_seconds())
                if failed else 0,
                "AncestorId": parent["Id"] if parent else None, "AncestorUniqueKey": parent["UniqueKey"] if parent
                else None, "RetryNumber": retry_number, "ManualRetryNumber": 0, "UniqueKey": self._uuid(),
                "HasVideoRecorded": False, "CreationTime": iso_z(created), "Progress": None,
                "RowVersion": base64.b64encode(self._rng.getrandbits(64).to_bytes(8, "big")).decode(),
                "OrganizationUnitId": q["OrganizationUnitId"],
                "OrganizationUnitFullyQualifiedName": q["OrganizationUnitFullyQualifiedName"],
                "Id": self._new_id("QueueItems")}, set(q["_folders"]))
            record["_QueueDefinition"] = ("QueueDefinitions", q["Id"])
            if processed and robot_id is not None:
                record["_Robot"] = ("Robots", robot_id)
            return record

    def add_log(self, job: Ref, message: str, *, level: str = "Info", at: datetime | None = None) -> Record:
        """A RobotLogs entry of the job; `Id` is 0, as on cloud log storage."""
        with self._lock:
            j = self._index["Jobs"][_ref(job)]
            robot = self._value(j, "Robot")
            return self._store("RobotLogs", {
                "Level": level, "WindowsIdentity": robot["Username"] if robot else None,
                "ProcessName": j["ReleaseName"], "TimeStamp": iso_z(at or self.wall_clock()), "Message": message,
                "JobKey": j["Key"], "RawMessage": None, "RobotName": robot["Name"] if robot else None,
                "HostMachineName": j["HostMachineName"], "MachineId": robot["MachineId"] if robot else None,
                "MachineKey": None, "RuntimeType": j["RuntimeType"], "Id": 0}, set(j["_folders"]))

    def rows(self, entity_set: str) -> list[Record]:
        """The stored records of a set (with hidden `_` keys), for assertions."""
        with self._lock:
            return list(self._rows[entity_set])

    # --------------------------------------------------------------------------------- populate
    def populate(self, n_folders: int = 3, n_processes: int = 4, n_jobs: int = 200, seed: int = 1, *,
                 anchor: datetime | None = None, items_per_queue: int = 20) -> None:
        """A whole tenant, the same for the same arguments: folders with robots, sessions,
        processes (n_processes per folder), a queue for every other process, `n_jobs` jobs over
        the 24 h before `anchor` (Ids in creation order) in every state with realistic `Info`, and
        robot logs for ended jobs."""
        rng = random.Random(seed)
        anchor = anchor or POPULATE_ANCHOR
        with self._lock:
            folders, releases, queues = [], [], []
            for n in range(n_folders):
                lap = n // len(FOLDER_NAMES)
                name = FOLDER_NAMES[n % len(FOLDER_NAMES)] + (f" {lap + 1}" if lap else "")
                folder = self.add_folder(name, key=self._uuid(rng))
                folders.append(folder)
                short = "".join(w[0] for w in name.split()).upper()[:3] + str(n + 1)
                for k in (1, 2):
                    robot = self.add_robot(folder, f"{short.lower()}-unattended-{k}",
                                           machine_name=f"RPA-{short}-VM{k:02d}",
                                           username=f"CORP\\svc_rpa_{short.lower()}{k}",
                                           created=anchor - timedelta(days=rng.randint(30, 600)))
                    self.add_session(robot, folder,
                                     state=rng.choice(("Available", "Available", "Busy", "Disconnected")),
                                     reported=anchor - timedelta(seconds=rng.randint(5, 90)))
                for p in range(n_processes):
                    process = PROCESS_NAMES[(n * n_processes + p) % len(PROCESS_NAMES)]
                    rel = self.add_release(folder, process, version=f"1.{rng.randint(0, 9)}.{rng.randint(0, 40)}",
                                           created=anchor - timedelta(days=rng.randint(20, 400)))
                    releases.append((folder, rel))
                    if p % 2 == 0:
                        queues.append(self.add_queue(folder, f"{process}_Queue", sla_minutes=120, risk_sla_minutes=90,
                                                     max_retries=rng.choice((0, 1, 2)), release=rel,
                                                     created=anchor - timedelta(days=rng.randint(20, 400))))
            plans = []
            for _ in range(n_jobs if releases else 0):
                state = rng.choices(("Successful", "Faulted", "Stopped", "Running", "Pending", "Suspended",
                                     "Stopping"), (60, 16, 5, 9, 6, 3, 1))[0]
                duration = timedelta(seconds=rng.randint(20, 2400))
                if state == "Pending":
                    created = anchor - timedelta(seconds=rng.randint(1, 600))
                elif state in TERMINAL_STATES:
                    created = anchor - duration - timedelta(seconds=rng.randint(60, 86400))
                else:
                    created = anchor - timedelta(seconds=rng.randint(30, 3600))
                plans.append((created, state, duration, rng.choice(releases)))
            for created, state, duration, (folder, rel) in sorted(plans, key=lambda plan: plan[0]):
                started = created + timedelta(seconds=rng.randint(1, 20))
                robots = [r for r in self._rows["Robots"] if folder["Id"] in r["_folders"]]
                info, strategy = None, None
                if state == "Faulted":
                    info = rng.choice(FAULTED_INFOS).format(n=rng.randint(10000, 99999), process=rel["Name"])
                elif state == "Stopped":
                    strategy = rng.choice(("SoftStop", "SoftStop", "Kill"))
                    info = "Job canceled" if strategy == "SoftStop" else "Job stopped"
                job = self.add_job(folder, rel, state=state, robot=rng.choice(robots) if robots else None,
                                   created=created, started=started, ended=started + duration, info=info,
                                   source_type=rng.choice(("Schedule", "Schedule", "Queue", "Manual")),
                                   stop_strategy=strategy, key=self._uuid(rng))
                if state in TERMINAL_STATES:
                    self.add_log(job, f"{rel['Name']} execution started", at=started)
                    if state == "Faulted":
                        self.add_log(job, info or "", level="Error", at=started + duration)
                    self.add_log(job, f"{rel['Name']} execution ended", at=started + duration)
            for queue in queues:
                for i in range(items_per_queue):
                    created = anchor - timedelta(seconds=rng.randint(120, 86400))
                    status = rng.choices(("Successful", "Failed", "New", "InProgress", "Abandoned", "Deleted"),
                                         (55, 18, 15, 6, 3, 3))[0]
                    reference = f"INV-{rng.randint(100000, 999999)}"
                    if status != "Failed":
                        self.add_queue_item(queue, status=status, reference=reference, created=created,
                                            priority=rng.choice(QUEUE_PRIORITIES))
                        continue
                    kind = rng.choice(EXCEPTION_TYPES)
                    reason = rng.choice(BUSINESS_REASONS if kind == "BusinessException" else APPLICATION_REASONS)
                    retry = kind == "ApplicationException" and queue["MaxNumberOfRetries"] > 0
                    first = self.add_queue_item(queue, status="Retried" if retry else "Failed", reference=reference,
                                                created=created, exception_type=kind, reason=reason)
                    if retry:
                        self.add_queue_item(queue, status=rng.choice(("Successful", "Failed", "New")),
                                            reference=reference, created=created + timedelta(minutes=2),
                                            exception_type=kind, reason=reason, retry_number=1, ancestor=first)

    def populate_jobs(self, n_folders: int, n_processes: int, n_jobs: int, seed: int = 1, *,
                      anchor: datetime | None = None, history: timedelta = timedelta(hours=23)) -> None:
        """A large tenant, quickly (a benchmark's 100,000 jobs in seconds): `n_folders` folders with
        two robots each, `n_processes` processes of distinct names spread over them, and `n_jobs`
        jobs made by `add_job` as `populate` makes them: every robot runs one job at `anchor`, every
        folder has one Pending, the others ended over `history` before it (Successful, Faulted
        with realistic `Info`, Stopped). No sessions, queues or robot logs."""
        rng = random.Random(seed)
        anchor = anchor or POPULATE_ANCHOR
        with self._lock:
            robots: dict[int, list[Record]] = {}
            releases: list[tuple[Record, Record]] = []
            for n in range(n_folders):
                lap = n // len(FOLDER_NAMES)
                folder = self.add_folder(FOLDER_NAMES[n % len(FOLDER_NAMES)] + (f" {lap + 1}" if lap else ""),
                                         key=self._uuid(rng))
                robots[folder["Id"]] = [self.add_robot(folder, f"f{n + 1}-unattended-{k}",
                                                       machine_name=f"RPA-F{n + 1:03d}-VM{k:02d}",
                                                       created=anchor - timedelta(days=120)) for k in (1, 2)]
            folders = [self._index["Folders"][fid] for fid in robots]
            for p in range(n_processes):
                folder = folders[p % len(folders)]
                name = f"{PROCESS_NAMES[p % len(PROCESS_NAMES)]}_{p // len(PROCESS_NAMES) + 1:03d}"
                releases.append((folder, self.add_release(folder, name, created=anchor - timedelta(days=90))))
            plans = []  # (created, state, duration, folder, release, robot)
            for folder in folders if releases else []:
                own = [rel for f, rel in releases if f is folder] or [releases[0][1]]
                for robot in robots[folder["Id"]]:
                    plans.append((anchor - timedelta(seconds=rng.randint(30, 1800)), "Running", None, folder,
                                  rng.choice(own), robot))
                plans.append((anchor - timedelta(seconds=rng.randint(1, 300)), "Pending", None, folder,
                              rng.choice(own), None))
            for _ in range(max(0, n_jobs - len(plans)) if releases else 0):
                folder, rel = rng.choice(releases)
                state = rng.choices(("Successful", "Faulted", "Stopped"), (80, 15, 5))[0]
                duration = timedelta(seconds=rng.randint(20, 2400))
                created = anchor - duration - timedelta(seconds=rng.randint(60, int(history.total_seconds())))
                plans.append((created, state, duration, folder, rel, rng.choice(robots[folder["Id"]])))
            for created, state, duration, folder, rel, robot in sorted(plans, key=lambda plan: plan[0]):
                started = created + timedelta(seconds=rng.randint(1, 20))
                info, strategy = None, None
                if state == "Faulted":
                    info = rng.choice(FAULTED_INFOS).format(n=rng.randint(10000, 99999), process=rel["Name"])
                elif state == "Stopped":
                    strategy = rng.choice(("SoftStop", "SoftStop", "Kill"))
                    info = "Job canceled" if strategy == "SoftStop" else "Job stopped"
                self.add_job(folder, rel, state=state, robot=robot, created=created,
                             started=started if state != "Pending" else None,
                             ended=started + duration if duration else None, info=info,
                             source_type=rng.choice(("Schedule", "Schedule", "Queue", "Manual")),
                             stop_strategy=strategy, key=self._uuid(rng))

    # --------------------------------------------------------------------------------- webhooks
    def job_event(self, job: Ref, event_type: str) -> dict[str, Any]:
        """A webhook body for a stored job; `job.stopped` and `job.created` carry a `Jobs` array,
        the other job events one `Job`."""
        with self._lock:
            j = self._index["Jobs"][_ref(job)]
            robot, release = self._value(j, "Robot"), self._value(j, "Release")
            body = {k: j[k] for k in ("Id", "Key", "State", "StartTime", "EndTime", "Info", "OutputArguments")}
            body["Robot"] = ({"Id": robot["Id"], "Name": robot["Name"], "MachineName": robot["MachineName"]}
                             if robot else None)
            body["Release"] = {"Id": release["Id"], "Key": release["Key"], "ProcessKey": release["ProcessKey"]}
            event: dict[str, Any] = {"Type": event_type, "EventId": uuid.uuid4().hex,
                                     "Timestamp": iso_z(self.wall_clock())}
            if event_type in ("job.stopped", "job.created"):
                event["Jobs"] = [body]
            else:
                event["Job"] = body
            event.update({"TenantId": self.tenant_id, "OrganizationUnitId": j["OrganizationUnitId"], "UserId": None})
            return event

    def queue_item_event(self, item: Ref, event_type: str = "queueItem.transactionFailed") -> dict[str, Any]:
        with self._lock:
            i = self._index["QueueItems"][_ref(item)]
            q = self._value(i, "QueueDefinition")
            body = {k: i[k] for k in ("Id", "Key", "QueueDefinitionId", "Status", "ReviewStatus", "Reference",
                                      "ProcessingExceptionType", "DueDate", "Priority", "DeferDate", "StartProcessing",
                                      "EndProcessing", "SecondsInPreviousAttempts", "AncestorId", "RetryNumber",
                                      "SpecificContent", "CreationTime", "Progress", "RowVersion")}
            exc = i["ProcessingException"]
            body["ProcessingException"] = {k: exc[k] for k in ("Reason", "Details", "Type")} if exc else None
            queue = {k: q[k] for k in ("Id", "Name", "Description", "MaxNumberOfRetries", "AcceptAutomaticallyRetry",
                                       "EnforceUniqueReference", "CreationTime")}
            return {"Type": event_type, "EventId": uuid.uuid4().hex, "Timestamp": iso_z(self.wall_clock()),
                    "QueueItem": body, "Queue": queue, "TenantId": self.tenant_id,
                    "OrganizationUnitId": i["OrganizationUnitId"], "UserId": None}

    def send_webhook(self, target_url: str, secret: str | None, event: dict[str, Any], timeout: float = 10.0) -> int:
        """POSTs the event as JSON, signed with `X-UiPath-Signature` when a secret is set; the
        receiver's HTTP status. Like Orchestrator, it does not retry."""
        body = json.dumps(event).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if secret:
            headers["X-UiPath-Signature"] = webhook_signature(secret, body)
        target = urllib.parse.urlsplit(target_url)
        connection_class = http.client.HTTPSConnection if target.scheme == "https" else http.client.HTTPConnection
        connection = connection_class(target.netloc, timeout=timeout)
        try:  # http.client keeps the header names' case (urllib would send `X-uipath-signature`)
            connection.request("POST", (target.path or "/") + (f"?{target.query}" if target.query else ""), body,
                               headers)
            response = connection.getresponse()
            response.read()
            status = response.status
        finally:
            connection.close()
        self.webhooks_sent.append((target_url, str(event.get("Type")), status))
        return status


def _count_option(options: dict[str, str], name: str) -> int | None:
    if name not in options:
        return None
    value = options[name].strip()
    if not value.lstrip("-").isdigit():
        raise ODataQueryError(f"Invalid value '{value}' for {name} query option found. "
                              f"The {name} query option requires a non-negative integer value.")
    return int(value)  # a negative one is refused by the caller, after the QueueItems check


# ---------------------------------------------------------------------------- realistic texts
FOLDER_NAMES = ("Finance", "Human Resources", "Procurement", "IT Operations", "Customer Service", "Shared")
PROCESS_NAMES = ("Invoice_Processing", "Vendor_Onboarding", "Payroll_Reconciliation", "Bank_Statement_Import",
                 "PO_Matching", "Employee_Offboarding", "SAP_GL_Posting", "Email_Triage", "Credit_Check",
                 "Report_Distribution", "Ticket_Enrichment", "Order_Entry")
_STACK = ("\r\n   at UiPath.Core.Activities.ScopeActivity.OnFaulted(NativeActivityFaultContext faultContext, "
          "Exception propagatedException, ActivityInstance propagatedFrom)"
          "\r\n   at System.Activities.Runtime.FaultCallbackWrapper.Invoke(NativeActivityFaultContext faultContext, "
          "Exception propagatedException, ActivityInstance propagatedFrom)")
FAULTED_INFOS = (
    "Click 'Post Document': UiPath.Core.Activities.SelectorNotFoundException: Cannot find the UI element "
    "corresponding to this selector: <wnd app='saplogon.exe' cls='SAP_FRONTEND_SESSION' title='Post Document*' />"
    "<sap id='wnd[0]/tbar[0]/btn[11]' />" + _STACK,
    "Type Into 'Vendor number': UiPath.Core.Activities.SelectorNotFoundException: Cannot find the UI element "
    "corresponding to this selector: <html app='msedge.exe' title='Supplier Portal*' /><webctrl id='vendorNo' "
    "tag='INPUT' />",
    "UiPath.Core.BusinessRuleException: Invoice {n} exceeds the approval limit and needs a manual review"
    "\r\n   at UiPath.Core.Activities.Throw.Execute(CodeActivityContext context)",
    "UiPath.Core.BusinessRuleException: Vendor {n} is blocked for payment",
    "Login to Supplier Portal: System.Exception: Logon failed for user 'svc_rpa_{n}': the user name or password "
    "is incorrect",
    "Could not start executor. Logon failure: unknown user name or bad password. (0x8007052E)",
    "Wait Element Vanish 'Loading': System.TimeoutException: Activity timeout exceeded" + _STACK,
    "HTTP Request: System.TimeoutException: The operation has timed out.",
    "System.Exception: Input file \\\\fs01\\rpa\\in\\{process}_{n}.xlsx was not found",
    "Invoke Code: System.NullReferenceException: Object reference not set to an instance of an object.",
)
BUSINESS_REASONS = ("Invoice amount does not match the purchase order", "Vendor is blocked for payment",
                    "Duplicate invoice number", "Missing cost center")
APPLICATION_REASONS = ("Cannot find the UI element corresponding to this selector",
                       "Activity timeout exceeded", "SAP session was closed unexpectedly",
                       "The remote server returned an error: (503) Server Unavailable.")
