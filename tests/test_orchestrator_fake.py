"""The Orchestrator stand-in behaves as its sources document: token flow and expiry, the folder
header, OData query options, paging, limits, faults and signed webhooks."""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest

from orchestrator_fake import FOLDER_ERROR, FakeOrchestrator, webhook_signature

T0 = datetime(2024, 6, 3, 12, 0, tzinfo=timezone.utc)


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def token_for(orch: FakeOrchestrator, scope: str | None = None, secret: str | None = None) -> tuple[int, Any]:
    form = {"grant_type": "client_credentials", "client_id": orch.client_id,
            "client_secret": orch.client_secret if secret is None else secret}
    if scope is not None:
        form["scope"] = scope
    req = urllib.request.Request(orch.token_url, data=urllib.parse.urlencode(form).encode(), method="POST",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def token(orch: FakeOrchestrator) -> str:
    status, body = token_for(orch)
    assert status == 200, body
    return str(body["access_token"])


def odata(orch: FakeOrchestrator, entity_set: str, params: dict[str, str] | None = None, *,
          folder: int | None = None, bearer: str | None = None, url: str | None = None
          ) -> tuple[int, dict[str, str], Any]:
    """GET an entity set (or a nextLink `url`); the status, headers and decoded body (bytes if not JSON)."""
    if url is None:
        url = orch.odata_url(entity_set)
        if params:
            url += "?" + urllib.parse.urlencode(params, quote_via=urllib.parse.quote, safe="$,'/:")
    headers = {"Authorization": f"Bearer {bearer or token(orch)}"}
    if folder is not None:
        headers["X-UIPATH-OrganizationUnitId"] = str(folder)
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            status, hdrs, raw = r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        status, hdrs, raw = exc.code, dict(exc.headers), exc.read()
    try:
        return status, hdrs, json.loads(raw)
    except ValueError:
        return status, hdrs, raw


@pytest.fixture
def orch() -> Iterator[FakeOrchestrator]:
    with FakeOrchestrator(jobs_per_minute=None, wall_clock=lambda: T0) as fake:
        yield fake


@pytest.fixture
def tenant(orch: FakeOrchestrator) -> dict[str, Any]:
    """One folder, one process, one robot, and six jobs whose times and states tests filter on."""
    folder = orch.add_folder("Finance")
    other = orch.add_folder("HR")
    release = orch.add_release(folder, "Invoice_Processing")
    orch.add_release(other, "Payroll")
    robot = orch.add_robot(folder, "fin-unattended-1", machine_name="RPA-FIN-VM01")
    jobs = [
        orch.add_job(folder, release, state="Successful", started=T0 - timedelta(hours=5),
                     ended=T0 - timedelta(hours=4)),
        orch.add_job(folder, release, state="Faulted", ended=T0 - timedelta(hours=3),
                     info="UiPath.Core.BusinessRuleException: Vendor 'O''Brien' is blocked"),
        orch.add_job(folder, release, state="Stopped", ended=T0 - timedelta(hours=2)),
        orch.add_job(folder, release, state="Running", started=T0 - timedelta(minutes=10)),
        orch.add_job(folder, release, state="Pending", created=T0 - timedelta(minutes=1)),
        orch.add_job(folder, release, state="Faulted", ended=T0 - timedelta(minutes=30, milliseconds=-123)),
    ]
    orch.add_job(other, orch.rows("Releases")[1], state="Faulted", ended=T0)
    return {"folder": folder["Id"], "other": other["Id"], "jobs": jobs, "robot": robot, "release": release}


def ids(body: Any) -> list[int]:
    return [item["Id"] for item in body["value"]]


# ------------------------------------------------------------------------------------------ auth

@pytest.mark.parametrize("flavour", ["cloud", "standalone"])
def test_token_flow_and_odata_roots_of_both_flavours(flavour: str) -> None:
    with FakeOrchestrator(flavour=flavour) as orch:  # type: ignore[arg-type]
        if flavour == "cloud":
            assert orch.token_url == f"{orch.url}/identity_/connect/token"
            assert orch.odata_url("Jobs") == f"{orch.url}/{orch.org}/{orch.tenant}/orchestrator_/odata/Jobs"
        else:
            assert orch.token_url == f"{orch.url}/identity/connect/token"
            assert orch.odata_url("Jobs") == f"{orch.url}/odata/Jobs"
        other = "/identity/connect/token" if flavour == "cloud" else "/identity_/connect/token"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(orch.url + other, data=b"grant_type=x"), timeout=10)
        assert refused.value.code == 404
        status, body = token_for(orch, scope="OR.Folders.Read OR.Jobs.Read")
        assert status == 200
        assert set(body) == {"access_token", "expires_in", "token_type", "scope"}
        assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
        assert body["scope"] == "OR.Folders.Read OR.Jobs.Read"
        orch.add_folder("Shared")
        status, _, page = odata(orch, "Folders", bearer=body["access_token"])
        assert status == 200 and [f["DisplayName"] for f in page["value"]] == ["Shared"]
        assert page["@odata.context"] == f"{orch.api_url}/odata/$metadata#Folders"
        secret_shown = [r.query.get("client_secret") for r in orch.requests if orch.token_url.endswith(r.path)]
        assert secret_shown and set(secret_shown) == {"***"}


def test_token_refused_for_a_wrong_secret_a_scope_not_granted_and_after_revocation() -> None:
    with FakeOrchestrator(granted_scopes=frozenset({"OR.Jobs.Read", "OR.Folders.Read"})) as orch:
        assert token_for(orch, secret="wrong") == (400, {"error": "invalid_client"})
        assert token_for(orch, scope="OR.Jobs.Read OR.Queues.Read") == (400, {"error": "invalid_scope"})
        status, body = token_for(orch)  # no scope: every granted scope
        assert status == 200 and body["scope"] == "OR.Folders.Read OR.Jobs.Read"
        orch.revoke_secret()
        assert token_for(orch) == (400, {"error": "invalid_client"})
        folder = orch.add_folder("F")
        status, _, _ = odata(orch, "Jobs", folder=folder["Id"], bearer=body["access_token"])
        assert status == 200  # a token issued before the revocation lives until it expires


def test_a_token_without_the_endpoints_scope_gets_the_real_error_message_envelope() -> None:
    with FakeOrchestrator() as orch:
        folder = orch.add_folder("F")
        _, body = token_for(orch, scope="OR.Folders.Read OR.Jobs.Read")
        status, _, answer = odata(orch, "QueueItems", folder=folder["Id"], bearer=body["access_token"])
        assert status == 403
        assert answer == {"errorMessage": "Scope(s) 'OR.Folders.Read,OR.Jobs.Read' is(are) invalid. "
                                          "Expect to have 'OR.Queues' or 'OR.Queues.Read'. "}


def test_tokens_expire_after_their_ttl() -> None:
    with FakeOrchestrator(token_ttl=1) as orch:
        folder = orch.add_folder("F")
        status, body = token_for(orch)
        assert body["expires_in"] == 1
        assert odata(orch, "Jobs", folder=folder["Id"], bearer=body["access_token"])[0] == 200
        time.sleep(1.1)
        status, headers, answer = odata(orch, "Jobs", folder=folder["Id"], bearer=body["access_token"])
        assert status == 401 and answer == b""
        assert headers["WWW-Authenticate"].startswith(
            'Bearer error="invalid_token", error_description="The token expired')
        assert odata(orch, "Jobs", folder=folder["Id"])[0] == 200  # a new token works


def test_unknown_and_missing_bearer_tokens_get_401() -> None:
    with FakeOrchestrator() as orch:
        status, headers, body = odata(orch, "Folders", bearer="not-a-token")
        assert status == 401 and body == b"" and headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
        req = urllib.request.Request(orch.odata_url("Folders"))
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(req, timeout=10)
        assert exc.value.code == 401 and exc.value.headers["WWW-Authenticate"] == "Bearer"


def test_token_expiry_follows_the_injected_clock() -> None:
    clock = ManualClock()
    with FakeOrchestrator(token_ttl=2, clock=clock) as orch:
        bearer = token(orch)
        assert odata(orch, "Folders", bearer=bearer)[0] == 200
        clock.now += 2
        assert odata(orch, "Folders", bearer=bearer)[0] == 401


# --------------------------------------------------------------------------------------- folders

def test_folders_are_tenant_level_and_folder_scoped_sets_need_the_header(orch: FakeOrchestrator,
                                                                       tenant: dict[str, Any]) -> None:
    status, _, folders = odata(orch, "Folders")
    assert status == 200
    first = folders["value"][0]
    assert {"Id", "DisplayName", "FullyQualifiedName", "Key", "FolderType", "ParentId"} <= set(first)
    for folder in (None, 999999, "abc"):
        bearer = token(orch)
        headers = {"Authorization": f"Bearer {bearer}"}
        if folder is not None:
            headers["X-UIPATH-OrganizationUnitId"] = str(folder)
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(urllib.request.Request(orch.odata_url("Jobs"), headers=headers), timeout=10)
        assert exc.value.code == 400
        envelope = json.loads(exc.value.read())
        assert envelope["message"] == FOLDER_ERROR == ("Folder does not exist or the user does not have access to "
                                                       "the folder.")
        assert envelope["errorCode"] == 1100 and envelope["traceId"].startswith("00-")
    _, _, page = odata(orch, "Jobs", folder=tenant["other"])
    assert [j["ReleaseName"] for j in page["value"]] == ["Payroll"]


def test_each_folder_scoped_set_answers_with_the_schemas_fields(orch: FakeOrchestrator) -> None:
    orch.populate(n_folders=1, n_processes=2, n_jobs=30, seed=3)
    folder = orch.rows("Folders")[0]["Id"]
    expected = {
        "Jobs": {"Id", "Key", "State", "StartTime", "EndTime", "CreationTime", "LastModificationTime", "ReleaseName",
                 "Info", "HostMachineName", "Type", "SourceType", "OrganizationUnitId"},
        "QueueItems": {"Id", "Key", "QueueDefinitionId", "Status", "ProcessingExceptionType", "ProcessingException",
                       "RetryNumber", "CreationTime", "StartProcessing", "EndProcessing", "DueDate", "DeferDate",
                       "SecondsInPreviousAttempts", "Priority", "RiskSlaDate"},
        "QueueDefinitions": {"Id", "Name", "SlaInMinutes", "RiskSlaInMinutes", "MaxNumberOfRetries"},
        "Sessions": {"Id", "State", "MachineName", "HostMachineName", "ReportingTime", "IsUnresponsive"},
        "Robots": {"Id", "Name", "MachineName", "Type", "Username"},
        "Releases": {"Id", "Key", "ProcessKey", "Name"},
        "RobotLogs": {"Level", "Message", "TimeStamp", "JobKey", "RobotName", "Id"},
    }
    for entity_set, fields in expected.items():
        status, _, page = odata(orch, entity_set, {"$top": "100"}, folder=folder)
        assert status == 200, (entity_set, page)
        assert page["value"], entity_set
        assert fields <= set(page["value"][0]), entity_set
        assert "Robot" not in page["value"][0]  # navigation properties only with $expand
    _, _, logs = odata(orch, "RobotLogs", {"$top": "5"}, folder=folder)
    assert {log["Id"] for log in logs["value"]} == {0}
    _, _, sessions = odata(orch, "Sessions", {"$expand": "Robot"}, folder=folder)
    assert all(s["State"] in ("Available", "Busy", "Disconnected", "Unknown") for s in sessions["value"])
    assert all(s["Robot"]["MachineName"] == s["MachineName"] for s in sessions["value"])


# --------------------------------------------------------------------------------------- $filter

def test_filter_comparison_operators_on_numbers(orch: FakeOrchestrator, tenant: dict[str, Any]) -> None:
    all_ids = [j["Id"] for j in tenant["jobs"]]
    pivot = all_ids[2]
    cases = {"eq": [pivot], "ne": [i for i in all_ids if i != pivot], "gt": all_ids[3:], "ge": all_ids[2:],
             "lt": all_ids[:2], "le": all_ids[:3]}
    for op, expected in cases.items():
        status, _, page = odata(orch, "Jobs", {"$filter": f"Id {op} {pivot}"}, folder=tenant["folder"])
        assert status == 200 and ids(page) == expected, op


def test_filter_logic_parentheses_and_not(orch: FakeOrchestrator, tenant: dict[str, Any]) -> None:
    j = [job["Id"] for job in tenant["jobs"]]
    cases = {
        f"State eq 'Faulted' and Id gt {j[1]}": [j[5]],
        "State eq 'Running' or State eq 'Pending'": [j[3], j[4]],
        f"(State eq 'Faulted' or State eq 'Stopped') and not (Id eq {j[2]})": [j[1], j[5]],
        "not State eq 'Successful'": j[1:],
        f"Id eq {j[0]} or Id eq {j[1]} and State eq 'Stopped'": [j[0]],  # and binds tighter than or
    }
    for expression, expected in cases.items():
        status, _, page = odata(orch, "Jobs", {"$filter": expression}, folder=tenant["folder"])
        assert status == 200 and ids(page) == expected, expression


def test_filter_strings_null_and_booleans(orch: FakeOrchestrator, tenant: dict[str, Any]) -> None:
    j = [job["Id"] for job in tenant["jobs"]]
    folder = tenant["folder"]
    cases = {
        "EndTime eq null": [j[3], j[4]],
        "EndTime ne null": [j[0], j[1], j[2], j[5]],
        "StartTime eq null and HostMachineName eq null": [j[4]],
        "Info eq 'Job canceled'": [j[2]],
        "Info eq 'UiPath.Core.BusinessRuleException: Vendor ''O''''Brien'' is blocked'": [j[1]],
        "startswith(Info,'UiPath.Core.BusinessRuleException')": [j[1]],
        "contains(Info,'blocked')": [j[1]],
        "ReleaseName eq 'invoice_processing' and Id eq " + str(j[0]): [j[0]],  # SQL Server compares ignoring case
        "RequiresUserInteraction eq false and State eq 'Stopped'": [j[2]],
        "HasVideoRecorded eq true": [],
    }
    for expression, expected in cases.items():
        status, _, page = odata(orch, "Jobs", {"$filter": expression}, folder=folder)
        assert status == 200 and ids(page) == expected, (expression, page)


def test_filter_dates_bare_with_offsets_and_fractions(orch: FakeOrchestrator, tenant: dict[str, Any]) -> None:
    j = [job["Id"] for job in tenant["jobs"]]
    folder = tenant["folder"]
    cases = {
        "EndTime ge 2024-06-03T09:00:00Z": [j[1], j[2], j[5]],
        "EndTime gt 2024-06-03T09:00:00Z": [j[2], j[5]],
        "EndTime lt 2024-06-03T09:00:00Z": [j[0]],
        "EndTime le 2024-06-03T09:00:00.000+00:00": [j[0], j[1]],
        "EndTime eq 2024-06-03T11:30:00.123Z": [j[5]],
        "EndTime gt 2024-06-03T11:30:00.1229999Z": [j[5]],
        "EndTime ge 2024-06-03T13:30:00.124+02:00": [],
        "EndTime ge 2024-06-03T13:30:00.123+02:00": [j[5]],
        "EndTime ge 2024-06-03T09:00:00Z or EndTime eq null": [j[1], j[2], j[3], j[4], j[5]],
        "CreationTime gt 2024-06-03T11:58:00Z": [j[4]],
    }
    for expression, expected in cases.items():
        status, _, page = odata(orch, "Jobs", {"$filter": expression}, folder=folder)
        assert status == 200 and ids(page) == expected, (expression, page)


def test_filter_enums_by_name_number_and_typed_literal(orch: FakeOrchestrator, tenant: dict[str, Any]) -> None:
    j = [job["Id"] for job in tenant["jobs"]]
    folder = tenant["folder"]
    faulted = [j[1], j[5]]
    for expression in ("State eq 'Faulted'", "State eq '4'", "State eq UiPath.Core.Enums.JobState'Faulted'",
                       "(State eq '4')"):
        status, _, page = odata(orch, "Jobs", {"$filter": expression}, folder=folder)
        assert status == 200 and ids(page) == faulted, expression
    status, _, page = odata(orch, "Jobs", {"$filter": "State ge '4' and State le '5'"}, folder=folder)
    assert ids(page) == [j[0], j[1], j[5]]  # Faulted (4) and Successful (5)
    queue = orch.add_queue(folder, "Invoices")
    new = orch.add_queue_item(queue, status="New")
    failed = orch.add_queue_item(queue, status="Failed", exception_type="BusinessException", reason="Duplicate")
    for expression, expected in {"((Status eq '0'))": [new], "Status eq '2'": [failed],
                                 "ProcessingExceptionType eq 'BusinessException'": [failed],
                                 "ProcessingException/Reason eq 'Duplicate'": [failed]}.items():
        status, _, page = odata(orch, "QueueItems", {"$filter": expression}, folder=folder)
        assert status == 200 and ids(page) == [i["Id"] for i in expected], expression


def test_filter_through_navigation_properties(orch: FakeOrchestrator, tenant: dict[str, Any]) -> None:
    j = [job["Id"] for job in tenant["jobs"]]
    robot = tenant["robot"]
    _, _, page = odata(orch, "Jobs", {"$filter": "Robot/Name eq 'fin-unattended-1'"}, folder=tenant["folder"])
    assert ids(page) == [i for i in j if i != j[4]]  # the pending job has no robot
    _, _, page = odata(orch, "Jobs", {"$filter": f"Robot/Id eq {robot['Id']} and State eq 'Running'"},
                       folder=tenant["folder"])
    assert ids(page) == [j[3]]
    key = tenant["jobs"][2]["Key"]
    _, _, page = odata(orch, "Jobs", {"$filter": f"Key eq {key}"}, folder=tenant["folder"])
    assert ids(page) == [j[2]]


@pytest.mark.parametrize("expression, says", [
    ("State eq", "Syntax error at position 8 in 'State eq'."),
    ("(State eq 'Faulted'", "Syntax error"),
    ("State eq 'Faulted' and", "Syntax error"),
    ("State = 'Faulted'", "Syntax error"),
    ("EndTime gt datetime'2024-01-01T00:00:00'", "Syntax error"),  # OData v2/v3 spelling
    ("Nope eq 1", "Could not find a property named 'Nope' on type 'UiPath.Server.Configuration.OData.JobDto'."),
    ("State eq 'Exploded'", "The string 'Exploded' is not a valid enumeration type constant."),
    ("State eq 4", "incompatible types"),
    ("EndTime gt '2024-01-01T00:00:00Z'", "Found operand types 'Edm.DateTimeOffset' and 'Edm.String'"),
    ("Id", "must evaluate to a single boolean value"),
])
def test_an_invalid_filter_gets_400_with_an_odata_envelope(orch: FakeOrchestrator, tenant: dict[str, Any],
                                                           expression: str, says: str) -> None:
    status, _, body = odata(orch, "Jobs", {"$filter": expression}, folder=tenant["folder"])
    assert status == 400
    assert set(body) == {"message", "errorCode", "traceId"} and body["errorCode"] == 0
    assert body["message"].startswith("The query specified in the URI is not valid. ")
    assert says in body["message"]


def test_an_unencoded_plus_in_an_offset_reads_as_a_space(orch: FakeOrchestrator, tenant: dict[str, Any]) -> None:
    """As in any query string: a client must send `+00:00` as `%2B00:00`."""
    raw = orch.odata_url("Jobs") + "?$filter=EndTime%20ge%202024-06-03T09:00:00+00:00"
    status, _, body = odata(orch, "Jobs", url=raw, folder=tenant["folder"])
    assert status == 400 and "Syntax error" in body["message"]
    status, _, body = odata(orch, "Jobs", url=raw.replace("+", "%2B"), folder=tenant["folder"])
    assert status == 200 and len(body["value"]) == 3


def test_a_pending_job_canceled_never_started(orch: FakeOrchestrator, tenant: dict[str, Any]) -> None:
    job = orch.update_job(tenant["jobs"][4], state="Stopped", at=T0 + timedelta(seconds=3))
    assert job["StartTime"] is None and job["HostMachineName"] is None
    assert job["EndTime"] == "2024-06-03T12:00:03Z" and job["Info"] == "Job canceled"


# ------------------------------------------------------------------ $orderby $top $skip $count ...

def test_orderby_several_fields_ascending_and_descending(orch: FakeOrchestrator, tenant: dict[str, Any]) -> None:
    j = [job["Id"] for job in tenant["jobs"]]
    folder = tenant["folder"]
    _, _, page = odata(orch, "Jobs", {"$orderby": "Id desc"}, folder=folder)
    assert ids(page) == j[::-1]
    _, _, page = odata(orch, "Jobs", {"$orderby": "State asc,Id desc"}, folder=folder)
    # by enum number: Pending 0, Running 1, Faulted 4, Successful 5, Stopped 6
    assert ids(page) == [j[4], j[3], j[5], j[1], j[0], j[2]]
    _, _, page = odata(orch, "Jobs", {"$orderby": "EndTime desc, Id"}, folder=folder)
    assert ids(page) == [j[5], j[2], j[1], j[0], j[3], j[4]]  # null last when descending
    status, _, body = odata(orch, "Jobs", {"$orderby": "Bogus desc"}, folder=folder)
    assert status == 400 and "Bogus" in body["message"]


def test_top_skip_count_select_and_expand(orch: FakeOrchestrator, tenant: dict[str, Any]) -> None:
    j = [job["Id"] for job in tenant["jobs"]]
    folder = tenant["folder"]
    _, _, page = odata(orch, "Jobs", {"$top": "2", "$skip": "3", "$count": "true", "$orderby": "Id"}, folder=folder)
    assert ids(page) == j[3:5] and page["@odata.count"] == 6
    assert list(page) == ["@odata.context", "@odata.count", "value"]
    _, _, page = odata(orch, "Jobs", {"$filter": "State eq 'Faulted'", "$count": "true", "$top": "1"}, folder=folder)
    assert page["@odata.count"] == 2 and len(page["value"]) == 1
    _, _, page = odata(orch, "Jobs", {"$top": "2"}, folder=folder)
    assert "@odata.count" not in page
    _, _, page = odata(orch, "Jobs", {"$select": "Id,State", "$top": "1"}, folder=folder)
    assert page["value"] == [{"State": "Successful", "Id": j[0]}]
    _, _, page = odata(orch, "Jobs", {"$select": "Id", "$expand": "Robot,Release", "$filter": f"Id eq {j[0]}"},
                       folder=folder)
    job = page["value"][0]
    assert job["Robot"]["Name"] == "fin-unattended-1" and job["Robot"]["MachineName"] == "RPA-FIN-VM01"
    assert job["Release"]["ProcessKey"] == "Invoice_Processing" and job["Release"]["Key"] == tenant["release"]["Key"]
    _, _, page = odata(orch, "Jobs", {"$expand": "Robot", "$filter": "State eq 'Pending'"}, folder=folder)
    assert page["value"][0]["Robot"] is None and page["value"][0]["StartTime"] is None
    for bad in ({"$top": "-1"}, {"$skip": "x"}, {"$select": "Nope"}, {"$expand": "Info"}, {"$count": "yes"},
                {"$apply": "groupby((State))"}):
        status, _, body = odata(orch, "Jobs", bad, folder=folder)
        assert status == 400, bad


def test_single_entity_and_its_does_not_exist_envelope(orch: FakeOrchestrator, tenant: dict[str, Any]) -> None:
    job = tenant["jobs"][1]
    status, _, body = odata(orch, "Jobs", url=f"{orch.odata_url('Jobs')}({job['Id']})", folder=tenant["folder"])
    assert status == 200 and body["Key"] == job["Key"] and body["@odata.context"].endswith("#Jobs/$entity")
    status, _, body = odata(orch, "QueueItems", url=f"{orch.odata_url('QueueItems')}(1)", folder=tenant["folder"])
    assert status == 404 and body["message"] == "QueueItem does not exist." and body["errorCode"] == 1002


def test_queue_items_top_above_100_is_refused_with_the_real_envelope(orch: FakeOrchestrator) -> None:
    folder = orch.add_folder("Ops")
    queue = orch.add_queue(folder, "Tickets")
    for n in range(130):
        orch.add_queue_item(queue, reference=f"T-{n}")
    status, _, body = odata(orch, "QueueItems", {"$top": "101"}, folder=folder["Id"])
    assert status == 400
    assert body["message"] == "The field take must be between 0 and 100" and body["errorCode"] == 1009
    assert set(body) == {"message", "errorCode", "traceId"}
    status, _, page = odata(orch, "QueueItems", {"$top": "100", "$skip": "100"}, folder=folder["Id"])
    assert status == 200 and len(page["value"]) == 30
    _, _, page = odata(orch, "QueueItems", folder=folder["Id"])
    assert len(page["value"]) == 100 and "@odata.nextLink" not in page  # cut silently at the page limit


def test_other_sets_take_at_most_1000(orch: FakeOrchestrator) -> None:
    folder = orch.add_folder("Ops")
    release = orch.add_release(folder, "Bulk")
    for _ in range(1005):
        orch.add_job(folder, release)
    status, _, body = odata(orch, "Jobs", {"$top": "1001"}, folder=folder["Id"])
    assert status == 400 and "The limit of '1000' for Top query has been exceeded" in body["message"]
    _, _, page = odata(orch, "Jobs", {"$top": "1000"}, folder=folder["Id"])
    assert len(page["value"]) == 1000
    _, _, page = odata(orch, "Jobs", folder=folder["Id"])
    assert len(page["value"]) == 1000


@pytest.mark.parametrize("client_top", [None, "23"])
def test_next_link_paging_walks_every_item_exactly_once(client_top: str | None) -> None:
    with FakeOrchestrator(next_link_page=7, jobs_per_minute=None) as orch:
        orch.populate(n_folders=2, n_processes=3, n_jobs=90, seed=11)
        folder = orch.rows("Folders")[0]["Id"]
        params = {"$filter": "EndTime ge 2024-06-02T18:00:00Z or EndTime eq null", "$orderby": "Id asc",
                  "$count": "true"}
        expected = [j["Id"] for j in orch.rows("Jobs") if j["OrganizationUnitId"] == folder
                    and (j["EndTime"] is None or j["EndTime"] >= "2024-06-02T18:00:00Z")]
        if client_top:
            params["$top"] = client_top
            expected = expected[:int(client_top)]
        assert len(expected) > 14
        seen: list[int] = []
        status, _, page = odata(orch, "Jobs", params, folder=folder)
        pages = 1
        while True:
            assert status == 200 and len(page["value"]) <= 7
            seen += ids(page)
            if "@odata.nextLink" not in page:
                break
            next_link = page["@odata.nextLink"]
            assert next_link.startswith(orch.odata_url("Jobs") + "?") and "$skip=" in next_link
            status, _, page = odata(orch, "Jobs", url=page["@odata.nextLink"], folder=folder)
            pages += 1
        assert seen == expected and len(set(seen)) == len(seen)
        assert pages == -(-len(expected) // 7)


# ------------------------------------------------------------------------------ limits and faults

def test_rate_limit_answers_429_with_retry_after_once_the_budget_is_spent() -> None:
    clock = ManualClock()
    with FakeOrchestrator(jobs_per_minute=5, clock=clock) as orch:
        folder = orch.add_folder("F")["Id"]
        bearer = token(orch)
        for _ in range(5):
            assert odata(orch, "Jobs", folder=folder, bearer=bearer)[0] == 200
            clock.now += 2
        status, headers, body = odata(orch, "Jobs", folder=folder, bearer=bearer)
        assert status == 429 and int(headers["Retry-After"]) == 50  # the first request leaves the window then
        assert body["errorCode"] == 0 and body["message"]
        assert odata(orch, "QueueItems", folder=folder, bearer=bearer)[0] == 200  # its own budget
        assert odata(orch, "Folders", bearer=bearer)[0] == 200  # not limited
        assert orch.throttled["Jobs"] == 1 and orch.throttled_total == 1
        clock.now += 50
        assert odata(orch, "Jobs", folder=folder, bearer=bearer)[0] == 200
        assert odata(orch, "Jobs", folder=folder, bearer=bearer)[0] == 429
        assert orch.counts["Jobs"] == 8 and orch.throttled["Jobs"] == 2


def test_default_budget_is_100_per_minute() -> None:
    with FakeOrchestrator() as orch:
        folder = orch.add_folder("F")["Id"]
        bearer = token(orch)
        statuses = [odata(orch, "QueueItems", folder=folder, bearer=bearer)[0] for _ in range(101)]
        assert statuses == [200] * 100 + [429]


def test_fail_every_nth_odata_request_alternates_500_and_503() -> None:
    with FakeOrchestrator(fail_every=3) as orch:
        bearer = token(orch)
        answers = [odata(orch, "Folders", bearer=bearer) for _ in range(7)]
        assert [a[0] for a in answers] == [200, 200, 500, 200, 200, 503, 200]
        assert answers[2][2]["message"] == "An error has occurred."
        assert answers[5][1]["Content-Type"].startswith("text/html")
        assert orch.faults_served == 2 and orch.counts["token"] == 1  # the token endpoint is not counted


def test_error_once_queues_one_error_for_a_path(orch: FakeOrchestrator) -> None:
    folder = orch.add_folder("F")["Id"]
    orch.error_once("/odata/Jobs", 503)
    orch.error_once("/connect/token", 500)
    orch.error_once("/odata/Jobs", 429, retry_after=7)
    assert token_for(orch)[0] == 500
    bearer = token(orch)
    assert odata(orch, "Folders", bearer=bearer)[0] == 200
    assert odata(orch, "Jobs", folder=folder, bearer=bearer)[0] == 503
    status, headers, _ = odata(orch, "Jobs", folder=folder, bearer=bearer)
    assert status == 429 and headers["Retry-After"] == "7"
    assert odata(orch, "Jobs", folder=folder, bearer=bearer)[0] == 200


def test_requests_are_recorded_without_the_token(orch: FakeOrchestrator) -> None:
    folder = orch.add_folder("F")["Id"]
    bearer = token(orch)
    odata(orch, "Jobs", {"$filter": "State eq 'Faulted'", "$top": "5"}, folder=folder, bearer=bearer)
    last = orch.requests[-1]
    assert last.method == "GET" and last.path.endswith("/odata/Jobs")
    assert last.query == {"$filter": "State eq 'Faulted'", "$top": "5"}
    assert last.header("authorization") == "Bearer ***" and last.header("X-UIPATH-OrganizationUnitId") == str(folder)
    assert bearer not in json.dumps([r.__dict__ for r in orch.requests])
    assert orch.counts["Jobs"] == 1 and orch.counts["token"] == 1


def test_date_header_is_the_servers_clock(orch: FakeOrchestrator) -> None:
    _, headers, _ = odata(orch, "Folders")
    assert headers["Date"] == "Mon, 03 Jun 2024 12:00:00 GMT"


# ------------------------------------------------------------------------------------------ data

def test_update_job_ends_it_and_bumps_last_modification_time(orch: FakeOrchestrator, tenant: dict[str, Any]) -> None:
    pending, running = tenant["jobs"][4], tenant["jobs"][3]
    before = running["LastModificationTime"]
    orch.update_job(pending, state="Running", at=T0 + timedelta(seconds=5))
    assert pending["StartTime"] == "2024-06-03T12:00:05Z" and pending["HostMachineName"] == "RPA-FIN-VM01"
    orch.update_job(running, state="Faulted", info="System.TimeoutException: Activity timeout exceeded",
                    at=T0 + timedelta(seconds=9))
    _, _, page = odata(orch, "Jobs", {"$filter": f"LastModificationTime gt {before}"}, folder=tenant["folder"])
    changed = {job["Id"]: job for job in page["value"]}
    assert set(changed) >= {pending["Id"], running["Id"]}
    assert changed[running["Id"]]["EndTime"] == "2024-06-03T12:00:09Z"
    assert changed[running["Id"]]["Info"] == "System.TimeoutException: Activity timeout exceeded"
    again = orch.update_job(running, state="Faulted", at=T0)  # an earlier time still moves it forward
    assert again["LastModificationTime"] == "2024-06-03T12:00:09.001Z"


def test_populate_is_deterministic_and_realistic() -> None:
    answers = []
    for _ in range(2):
        with FakeOrchestrator(jobs_per_minute=None) as orch:
            orch.populate(n_folders=3, n_processes=4, n_jobs=150, seed=5)
            folder = orch.rows("Folders")[1]["Id"]
            _, _, jobs = odata(orch, "Jobs", {"$top": "1000", "$expand": "Robot"}, folder=folder)
            _, _, items = odata(orch, "QueueItems", {"$top": "100"}, folder=folder)
            answers.append((jobs["value"], items["value"]))
            rows = orch.rows("Jobs")
    assert answers[0] == answers[1]
    assert len(rows) == 150 and [j["Id"] for j in rows] == sorted(j["Id"] for j in rows)
    assert [j["CreationTime"] for j in rows] == sorted(j["CreationTime"] for j in rows)
    states = {j["State"] for j in rows}
    assert {"Successful", "Faulted", "Stopped", "Running", "Pending"} <= states
    for job in rows:
        if job["State"] == "Pending":
            assert job["StartTime"] is None and job["HostMachineName"] is None and job["EndTime"] is None
        elif job["State"] in ("Successful", "Faulted", "Stopped"):
            assert job["EndTime"] and job["StartTime"] <= job["EndTime"] and job["Info"]
        else:
            assert job["EndTime"] is None and job["StartTime"] and job["HostMachineName"]
        assert job["CreationTime"].endswith("Z")
    infos = " ".join(j["Info"] for j in rows if j["State"] == "Faulted")
    for text in ("SelectorNotFoundException: Cannot find the UI element corresponding to this selector: <",
                 "UiPath.Core.BusinessRuleException", "System.TimeoutException", "System.Exception"):
        assert text in infos
    assert {j["Info"] for j in rows if j["State"] == "Stopped"} <= {"Job canceled", "Job stopped"}
    items = answers[0][1]
    failed = [i for i in items if i["Status"] in ("Failed", "Retried")]
    assert failed and all(i["ProcessingException"]["Type"] == i["ProcessingExceptionType"] for i in failed)
    assert all(i["ProcessingException"] is None for i in items if i["Status"] in ("New", "Successful"))


def test_populate_jobs_makes_a_large_tenant_with_the_jobs_add_job_makes() -> None:
    answers = []
    for _ in range(2):
        with FakeOrchestrator(jobs_per_minute=None) as orch:
            orch.populate_jobs(4, 10, 400, seed=3)
            folder = orch.rows("Folders")[2]["Id"]
            _, _, jobs = odata(orch, "Jobs", {"$top": "1000", "$expand": "Robot", "$filter": "EndTime eq null"},
                               folder=folder)
            answers.append(jobs["value"])
            rows, releases = orch.rows("Jobs"), orch.rows("Releases")
    assert answers[0] == answers[1]  # the same for the same arguments
    assert len(rows) == 400 and [j["Id"] for j in rows] == sorted(j["Id"] for j in rows)
    assert len({r["Name"] for r in releases}) == 10  # processes of distinct names
    by_state = collections.Counter(j["State"] for j in rows)
    assert by_state["Running"] == 4 * 2 and by_state["Pending"] == 4  # each robot busy, one waiting per folder
    assert {"Successful", "Faulted", "Stopped"} <= set(by_state)
    # in a folder: its two running jobs on its two robots, and its waiting one
    assert sorted(j["State"] for j in answers[0]) == ["Pending", "Running", "Running"]
    assert len({j["Robot"]["Name"] for j in answers[0] if j["State"] == "Running"}) == 2
    for job in rows:
        if job["State"] in ("Successful", "Faulted", "Stopped"):
            assert job["StartTime"] <= job["EndTime"] and job["Info"] and job["HostMachineName"]
    assert all(r.at > 0 for r in orch.requests)  # when each request arrived, for rates


# -------------------------------------------------------------------------------------- webhooks

class _Receiver:
    """A webhook endpoint capturing raw bodies and headers."""

    def __init__(self, status: int = 202) -> None:
        self.calls: list[tuple[bytes, dict[str, str]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.calls.append((body, dict(self.headers)))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/uipath"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_webhooks_are_signed_with_hmac_sha256_base64(orch: FakeOrchestrator, tenant: dict[str, Any]) -> None:
    receiver = _Receiver()
    try:
        faulted = tenant["jobs"][1]
        event = orch.job_event(faulted, "job.faulted")
        assert orch.send_webhook(receiver.url, "hook-secret", event) == 202
        body, headers = receiver.calls[-1]
        expected = base64.b64encode(hmac.new(b"hook-secret", body, hashlib.sha256).digest()).decode()
        assert headers["X-UiPath-Signature"] == expected == webhook_signature("hook-secret", body)
        sent = json.loads(body)
        assert sent["Type"] == "job.faulted" and sent["OrganizationUnitId"] == tenant["folder"]
        assert {"EventId", "Timestamp", "TenantId", "UserId"} <= set(sent)
        job = sent["Job"]
        assert job["Key"] == faulted["Key"] and job["State"] == "Faulted" and job["Info"] == faulted["Info"]
        assert job["Robot"] == {"Id": tenant["robot"]["Id"], "Name": "fin-unattended-1", "MachineName": "RPA-FIN-VM01"}
        assert job["Release"] == {"Id": tenant["release"]["Id"], "Key": tenant["release"]["Key"],
                                  "ProcessKey": "Invoice_Processing"}

        stopped = orch.job_event(tenant["jobs"][2], "job.stopped")
        assert orch.send_webhook(receiver.url, None, stopped) == 202
        body, headers = receiver.calls[-1]
        assert "X-UiPath-Signature" not in headers
        assert "Job" not in json.loads(body) and json.loads(body)["Jobs"][0]["Info"] == "Job canceled"
        assert "Jobs" in orch.job_event(tenant["jobs"][4], "job.created")
        assert "Job" in orch.job_event(tenant["jobs"][0], "job.completed")
        assert [call[1:] for call in orch.webhooks_sent] == [("job.faulted", 202), ("job.stopped", 202)]
    finally:
        receiver.close()


def test_a_refusing_receiver_status_is_returned_and_queue_item_events_carry_the_exception(
        orch: FakeOrchestrator) -> None:
    receiver = _Receiver(status=401)
    try:
        folder = orch.add_folder("Ops")
        queue = orch.add_queue(folder, "Invoices", max_retries=1)
        item = orch.add_queue_item(queue, status="Failed", exception_type="BusinessException",
                                   reason="Duplicate invoice number", reference="INV-1")
        event = orch.queue_item_event(item)
        assert event["QueueItem"]["ProcessingException"] == {"Reason": "Duplicate invoice number",
                                                             "Details": "Duplicate invoice number",
                                                             "Type": "BusinessException"}
        assert event["Queue"]["Name"] == "Invoices"
        assert orch.send_webhook(receiver.url, "s", event) == 401
    finally:
        receiver.close()
