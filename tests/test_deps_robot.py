"""Dependencies read from Robot Framework suites and resource files (botwatch.deps.robot): real
projects against hand-checked lists, each form on its own, and broken input that must be reported,
never raised."""

from __future__ import annotations

import json
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from botwatch.deps import robot
from botwatch.deps.model import Dependency, Step
from fuzzing import bounded

CORPUS = Path(__file__).parent / "corpus" / "deps" / "robot"
PROJECTS = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())


def robot_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix in (".robot", ".resource"))


def read(tmp_path: Path, **files: str):
    """Extraction of `files` ({relative path: text}, `__` for `/` in names) written under tmp_path."""
    paths = []
    for name, text in files.items():
        path = tmp_path / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        paths.append(path)
    return robot.extract(tmp_path, paths)


def found(result) -> set[tuple[str, str, str, int, str]]:
    return {(d.kind, d.value, d.file, d.line, d.context) for d in result.dependencies}


# the real projects --------------------------------------------------------------------------

def test_the_corpus_has_the_projects_its_sources_list():
    sources = (CORPUS / "SOURCES.md").read_text(encoding="utf-8")
    assert len(PROJECTS) >= 3
    for name in PROJECTS:
        assert f"`{name}/`" in sources
        assert (CORPUS / name / "LICENSE").is_file()
        assert (CORPUS / f"{name}.expected.json").is_file()


@pytest.mark.parametrize("project", PROJECTS)
def test_a_real_project_gives_exactly_its_hand_checked_dependencies(project):
    root = CORPUS / project
    expected = json.loads((CORPUS / f"{project}.expected.json").read_text(encoding="utf-8"))
    result = robot.extract(root, robot_files(root))
    assert result.problems == []
    assert result.files_read == len(robot_files(root))
    assert len(result.dependencies) == len(set(result.dependencies)), "a dependency given twice"
    assert {d.tool for d in result.dependencies} == {"robotframework"}
    want = {(e["kind"], e["value"], e["file"], e["line"], e["context"]) for e in expected}
    got = found(result)
    assert got - want == set(), "not in the hand-checked list"
    assert want - got == set(), "missed"


def test_steps_are_the_keyword_calls_in_source_order_with_library_prefixes_dropped():
    root = CORPUS / "robocorp__example-windows-calculator"
    result = robot.extract(root, [root / "image-based.robot"])
    assert result.steps == [Step("image-based.robot", line, name) for line, name in (
        (5, "close window"), (9, "open application"), (12, "get attribute"), (13, "log"),
        (18, "open the calculator"), (21, "click"), (22, "click"), (23, "click"), (24, "click"),
        (25, "log the result"), (27, "log"), (29, "screenshot"), (34, "calculate using image locators"))]


def test_a_resource_found_on_the_search_path_lends_its_libraries_to_the_suite():
    # tasks.robot imports `rpachallenge.resource`, which sits in shared/resources/ (robot.yaml's
    # PYTHONPATH): its `Click Button` is SeleniumLibrary's only through that resource
    root = CORPUS / "robocorp__example-shared-rpachallenge"
    alone = robot.extract(root, [root / "tasks.robot"])
    together = robot.extract(root, robot_files(root))
    assert ("selector", "Start", "tasks.robot", 8, "Click Button") not in found(alone)
    assert ("selector", "Start", "tasks.robot", 8, "Click Button") in found(together)


# each form ----------------------------------------------------------------------------------

def test_libraries_and_resources_imported_in_settings_and_at_run_time(tmp_path):
    result = read(tmp_path, **{"suite.robot": """
        *** Settings ***
        Library     SeleniumLibrary    timeout=5s    AS    Web
        Resource    ${CURDIR}/common.resource

        *** Tasks ***
        Go
            Import Library    RPA.Excel.Files
            Import Resource    other.resource
            Web.Click Element    id:go
        """, "common.resource": """
        *** Settings ***
        Library    RPA.Windows
        """})
    assert found(result) == {
        ("library", "SeleniumLibrary", "suite.robot", 2, "Library"),
        ("workflow", "${CURDIR}/common.resource", "suite.robot", 3, "Resource"),
        ("library", "RPA.Excel.Files", "suite.robot", 7, "Import Library"),
        ("workflow", "other.resource", "suite.robot", 8, "Import Resource"),
        ("selector", "id:go", "suite.robot", 9, "Web.Click Element"),
        ("library", "RPA.Windows", "common.resource", 2, "Library"),
    }


def test_a_locator_in_a_variable_is_taken_at_its_use_and_at_its_definition(tmp_path):
    result = read(tmp_path, **{"suite.robot": """
        *** Settings ***
        Library     RPA.Browser.Selenium
        Resource    locators.resource

        *** Variables ***
        ${LOGIN}    xpath://button[@id="login"]

        *** Tasks ***
        Log in
            Click Button    ${LOGIN}
            Wait Until Element Is Visible    ${SUBMIT}
            Input Text    ${PREFIX}field    x
        """, "locators.resource": """
        *** Variables ***
        ${SUBMIT}
        ...    css:#submit
        ${PREFIX}    id:
        """})
    assert found(result) == {
        ("library", "RPA.Browser.Selenium", "suite.robot", 2, "Library"),
        ("workflow", "locators.resource", "suite.robot", 3, "Resource"),
        ("selector", 'xpath://button[@id="login"]', "suite.robot", 10, "Click Button"),
        ("selector", 'xpath://button[@id="login"]', "suite.robot", 6, "variable ${LOGIN}"),
        ("selector", "css:#submit", "suite.robot", 11, "Wait Until Element Is Visible"),
        ("selector", "css:#submit", "locators.resource", 3, "variable ${SUBMIT}"),  # the value's own line
        # part of a locator: resolved, but the variable does not hold a locator of its own
        ("selector", "id:field", "suite.robot", 12, "Input Text"),
    }


def test_resource_imports_are_found_by_relative_path_and_never_by_a_guess_between_two(tmp_path):
    result = read(tmp_path, **{"tasks__main.robot": """
        *** Settings ***
        Resource    ../pages/login.resource
        Resource    common.resource

        *** Tasks ***
        Go
            Click Element    ${LOGIN}
            Click Element    ${SHARED}
        """, "pages__login.resource": """
        *** Settings ***
        Library    SeleniumLibrary

        *** Variables ***
        ${LOGIN}    id:login
        """, "one__common.resource": """
        *** Variables ***
        ${SHARED}    id:one
        """, "two__common.resource": """
        *** Variables ***
        ${SHARED}    id:two
        """})
    selectors = {(d.file, d.line, d.value) for d in result.dependencies if d.kind == "selector"}
    assert selectors == {("tasks/main.robot", 7, "id:login"), ("pages/login.resource", 5, "id:login")}


def test_set_variable_and_var_give_a_value_and_arguments_hide_the_suite_variable(tmp_path):
    result = read(tmp_path, **{"suite.robot": """
        *** Settings ***
        Library    Browser

        *** Variables ***
        ${target}    css=#from-the-suite

        *** Keywords ***
        Press
            [Arguments]    ${target}
            Click    ${target}
            ${row} =    Set Variable    css=tr.order
            Click    ${row}
            VAR    ${cell}    ${row} >> td
            Click    ${cell}
            ${row} =    Get Element    ${row}
            Click    ${row}
        """})
    assert found(result) == {
        ("library", "Browser", "suite.robot", 2, "Library"),
        ("selector", "css=tr.order", "suite.robot", 12, "Click"),
        ("selector", "css=tr.order", "suite.robot", 11, "variable ${row}"),
        ("selector", "css=tr.order >> td", "suite.robot", 14, "Click"),
        ("selector", "css=tr.order >> td", "suite.robot", 13, "variable ${cell}"),
        ("selector", "css=tr.order", "suite.robot", 15, "Get Element"),
        ("selector", "css=tr.order", "suite.robot", 11, "variable ${row}"),
    }
    assert not any("from-the-suite" in d.value for d in result.dependencies)


def test_a_locator_given_by_name_and_a_strategy_that_looks_like_a_name(tmp_path):
    result = read(tmp_path, **{"suite.robot": """
        *** Settings ***
        Library    Browser
        Library    SeleniumLibrary

        *** Tasks ***
        Shoot
            Take Screenshot    filename=out.png    selector=css=.modal
            Fill Text    css=#name    Jane
            Wait Until Element Is Visible    timeout=5s    locator=name=q
            Press Keys    NONE    RETURN
        """})
    selectors = {(d.value, d.line) for d in result.dependencies if d.kind == "selector"}
    assert selectors == {("css=.modal", 7), ("css=#name", 8), ("name=q", 9)}


def test_a_keyword_of_the_bots_own_hides_the_library_keyword_of_that_name(tmp_path):
    result = read(tmp_path, **{"suite.robot": """
        *** Settings ***
        Library    SeleniumLibrary

        *** Tasks ***
        Go
            Click Element    Start
            SeleniumLibrary.Click Element    id:real

        *** Keywords ***
        Click Element
            [Arguments]    ${label}
            Log    ${label}
        """})
    assert {d.value for d in result.dependencies if d.kind == "selector"} == {"id:real"}


def test_no_locator_without_the_library_that_reads_it(tmp_path):
    result = read(tmp_path, **{"suite.robot": """
        *** Tasks ***
        Go
            Click Element    id:go
            Input Text    id:q    text
        """})
    assert result.dependencies == []
    assert [s.name for s in result.steps] == ["click element", "input text"]


def test_keywords_run_by_builtin_keywords_are_read_as_calls(tmp_path):
    result = read(tmp_path, **{"suite.robot": """
        *** Settings ***
        Library    RPA.Browser.Selenium

        *** Tasks ***
        Go
            Wait Until Keyword Succeeds    3x    1s    Click Element    id:retry
            Run Keyword If    ${ready}    Click Button    id:yes    ELSE IF    ${later}    Click Link    id:later
            ...    ELSE    Go To    https://example.com/wait
            Run Keywords    Open Available Browser    https://example.com/    AND    Click Element    id:two
            Run Keyword And Ignore Error    Run Keyword    Submit Form    id:form
            Run Keyword    ${dynamic}    id:never
        """})
    assert found(result) - {("library", "RPA.Browser.Selenium", "suite.robot", 2, "Library")} == {
        ("selector", "id:retry", "suite.robot", 6, "Click Element"),
        ("selector", "id:yes", "suite.robot", 7, "Click Button"),
        ("selector", "id:later", "suite.robot", 7, "Click Link"),
        ("url", "https://example.com/wait", "suite.robot", 8, "Go To"),
        ("url", "https://example.com/", "suite.robot", 9, "Open Available Browser"),
        ("selector", "id:two", "suite.robot", 9, "Click Element"),
        ("selector", "id:form", "suite.robot", 10, "Submit Form"),
    }
    assert [s.name for s in result.steps if s.line == 10] == ["run keyword and ignore error", "run keyword",
                                                              "submit form"]


def test_secrets_are_taken_by_name_and_their_values_never(tmp_path):
    result = read(tmp_path, **{"suite.robot": """
        *** Settings ***
        Library    RPA.Browser.Selenium
        Library    Browser    AS    PW
        Library    RPA.Robocorp.Vault

        *** Variables ***
        ${PASSWORD}    hunter2-plain
        ${VAULT}    erp_login

        *** Tasks ***
        Log in
            ${secret} =    Get Secret    ${VAULT}
            Input Password    id:pw    ${PASSWORD}
            Input Password    id:pw2    literal-s3cret
            Input Password    id:pw3    %{ERP_PASSWORD=fallback-s3cret}
            PW.Fill Secret    css=#pin    $PIN
            PW.Type Secret    css=#otp    secret=%{ERP_OTP}
            Open Available Browser    https://bot:t0ken-s3cret@erp.example.com/login
        """})
    values = {d.value for d in result.dependencies}
    assert not any("s3cret" in v or "hunter2" in v for v in values)
    assert {(d.kind, d.value, d.line, d.context) for d in result.dependencies if d.kind == "credential"} == {
        ("credential", "erp_login", 12, "Get Secret"),
        ("credential", "erp_login", 8, "variable ${VAULT}"),
        ("credential", "%{ERP_PASSWORD}", 15, "Input Password"),
        ("credential", "%{ERP_OTP}", 17, "PW.Type Secret"),
    }
    assert ("url", "https://***@erp.example.com/login", 18) in {(d.kind, d.value, d.line) for d in result.dependencies}


def test_urls_files_mailboxes_assets_and_applications(tmp_path):
    result = read(tmp_path, **{"suite.robot": """
        *** Settings ***
        Library    RPA.HTTP
        Library    RPA.Excel.Files
        Library    RPA.Tables
        Library    RPA.PDF
        Library    RPA.Email.ImapSmtp    smtp_server=smtp.example.com
        Library    RPA.Robocorp.Storage
        Library    RPA.Desktop
        Library    Process
        Library    OperatingSystem
        Suite Setup    Open Application    C:/Program Files/ERP/erp.exe

        *** Variables ***
        ${API}    https://api.example.com/v1
        @{MIRRORS}    https://a.example.com    not a url

        *** Tasks ***
        Work
            Create Session    erp    ${API}
            Download    https://example.com/orders.xlsx    target_file=orders.xlsx
            Open Workbook    orders.xlsx
            Read Table From CSV    path=input/customers.csv
            Get Text From PDF    invoices/${INVOICE}
            ${text} =    Get File    ${CURDIR}${/}config.json
            Authorize    account=robot@example.com    password=${mail_password}
            ${rates} =    Get JSON Asset    exchange_rates
            Start Process    notepad.exe    report.txt
            Log    see https://docs.example.com for help
            My Keyword    https://portal.example.com/start
        """})
    assert found(result) - {d for d in found(result) if d[0] == "library"} == {
        ("application", "C:/Program Files/ERP/erp.exe", "suite.robot", 11, "Open Application"),
        ("url", "https://api.example.com/v1", "suite.robot", 14, "variable ${API}"),
        ("url", "https://a.example.com", "suite.robot", 15, "variable @{MIRRORS}"),
        ("url", "https://api.example.com/v1", "suite.robot", 19, "Create Session"),
        ("url", "https://example.com/orders.xlsx", "suite.robot", 20, "Download"),
        ("file", "orders.xlsx", "suite.robot", 21, "Open Workbook"),
        ("file", "input/customers.csv", "suite.robot", 22, "Read Table From CSV"),
        ("file", "invoices/${INVOICE}", "suite.robot", 23, "Get Text From PDF"),
        ("file", "${CURDIR}${/}config.json", "suite.robot", 24, "Get File"),
        ("mailbox", "robot@example.com", "suite.robot", 25, "Authorize"),
        ("asset", "exchange_rates", "suite.robot", 26, "Get JSON Asset"),
        ("application", "notepad.exe", "suite.robot", 27, "Start Process"),
        ("url", "https://portal.example.com/start", "suite.robot", 29, "My Keyword"),
    }


def test_variables_that_name_each_other_in_a_cycle_or_grow_too_long_stay_as_written(tmp_path):
    result = read(tmp_path, **{"suite.robot": """
        *** Settings ***
        Library    SeleniumLibrary

        *** Variables ***
        ${A}    id:${B}
        ${B}    ${A}x
        ${WIDE}    ${C}${C}${C}${C}${C}${C}${C}${C}
        ${C}    ${D}${D}${D}${D}${D}${D}${D}${D}
        ${D}    ${E}${E}${E}${E}${E}${E}${E}${E}
        ${E}    abcdefg
        ${HUGE}    ${WIDE}${WIDE}

        *** Tasks ***
        Go
            Click Element    ${A}
            Click Element    css:${WIDE}
            Click Element    css:${HUGE}
        """})
    selectors = {d.line: d.value for d in result.dependencies if d.kind == "selector"}
    assert selectors[15].startswith("id:") and "${" in selectors[15]
    assert selectors[16] == "css:" + "abcdefg" * 8 ** 3
    assert selectors[17] == "css:${HUGE}"  # beyond the bound on a value's length


# what cannot be read ------------------------------------------------------------------------

def test_robot_frameworks_errors_are_reported_with_their_lines_and_the_rest_is_read(tmp_path):
    result = read(tmp_path, **{"suite.robot": """
        *** Settings ***
        Libary      SeleniumLibrary
        Library     RPA.Browser.Selenium

        *** Tasks ***
        Go
            FOR    ${x}    IN
                Click Element    id:in-a-broken-loop
            Click Element    id:after
        *** Test Case ***
        Old
            Log    singular headers are deprecated, not wrong
        """})
    lines = {(p.file, p.line) for p in result.problems}
    assert ("suite.robot", 2) in lines  # the misspelt setting
    assert ("suite.robot", 7) in lines  # FOR without values and without END
    assert not any("deprecated" in p.message for p in result.problems)
    assert {d.value for d in result.dependencies if d.kind == "selector"} == {"id:in-a-broken-loop", "id:after"}


def test_a_resource_file_with_tasks_and_a_file_without_sections_are_reported(tmp_path):
    result = read(tmp_path, **{"keywords.resource": """
        *** Tasks ***
        Not here
            Log    x
        """, "notes.robot": """
        just some notes
        """})
    assert {(p.file, p.line) for p in result.problems} == {("keywords.resource", 1), ("notes.robot", 1)}


def test_bytes_that_are_not_utf8_are_reported_at_their_line(tmp_path):
    path = tmp_path / "latin.robot"
    path.write_bytes("*** Settings ***\nLibrary    RPA.Windows\n*** Tasks ***\nT\n    Click    name:Sp\xe4ter\n"
                     .encode("latin-1"))
    result = robot.extract(tmp_path, [path])
    assert [(p.file, p.line) for p in result.problems] == [("latin.robot", 5)]
    assert ("selector", "name:Sp\ufffdter", "latin.robot", 5, "Click") in found(result)


def test_nesting_too_deep_for_the_parser_is_reported_not_raised(tmp_path):
    depth = 3000
    text = "*** Tasks ***\nT\n" + "    IF    1\n" * depth + "    END\n" * depth
    path = tmp_path / "deep.robot"
    path.write_text(text, encoding="utf-8")
    other = tmp_path / "fine.robot"
    other.write_text("*** Settings ***\nLibrary    Browser\n", encoding="utf-8")
    result = robot.extract(tmp_path, [path, other])
    assert [(p.file, p.line) for p in result.problems] == [("deep.robot", 0)]
    assert result.dependencies == [Dependency("library", "Browser", "fine.robot", 2, "robotframework", "Library")]


def test_a_file_that_cannot_be_opened_is_reported(tmp_path):
    result = robot.extract(tmp_path, [tmp_path / "gone.robot"])
    assert [(p.file, p.line) for p in result.problems] == [("gone.robot", 0)]
    assert result.files_read == 0


def test_without_robot_framework_each_file_is_reported_with_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "robot.api", None)  # an import of it fails as when not installed
    paths = [tmp_path / "a.robot", tmp_path / "sub" / "b.resource"]
    result = robot.extract(tmp_path, paths)
    assert [(p.file, p.line) for p in result.problems] == [("a.robot", 0), ("sub/b.resource", 0)]
    assert all("pip install robotframework" in p.message for p in result.problems)
    assert result.dependencies == [] and result.files_read == 0


# fuzzing ------------------------------------------------------------------------------------

SEEDS = [p.read_bytes() for project in PROJECTS for p in robot_files(CORPUS / project)]


def _assert_reported_not_raised(data: bytes, name: str = "bot.robot") -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        with bounded(f"{len(data)} bytes of {name}"):
            result = robot.extract(Path(folder), [path])
    lines = len(data.decode("utf-8", "replace").splitlines()) + 1  # as Robot Framework counts them
    for problem in result.problems:
        assert problem.file == name
        assert 0 <= problem.line <= lines
        assert problem.message and not problem.message.startswith(robot.NOT_READ), problem
    for dependency in result.dependencies:
        assert dependency.file == name and 1 <= dependency.line <= lines


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["cut", "insert", "delete", "repeat"]))
        if action == "cut":
            del data[at:]
        elif action == "insert":
            data[at:at] = draw(st.sampled_from([
                b"${", b"}", b"%{", b"@{", b"&{", b"\n...    ", b"    ", b"\t", b"\n", b"FOR    ${x}    IN",
                b"END", b"IF", b"ELSE", b"TRY", b"*** Variables ***\n${A}    ${A}\n", b"*** Tasks ***\n",
                b"Run Keyword If    1    Run Keyword    ", b"=", b"\\", b"\x00", b"\xff\xfe", b"\r",
                b"locator=", b"AND", b"[Arguments]    ${a}=${b", b"VAR    ${v}", b"\xe2\x80",
            ]))
        elif action == "delete":
            del data[at:at + draw(st.integers(1, 40))]
        else:
            line_start = data.rfind(b"\n", 0, at) + 1
            line_end = data.find(b"\n", at)
            line = bytes(data[line_start:line_end if line_end >= 0 else len(data)])
            data[at:at] = (b"\n" + line) * draw(st.integers(1, 50))
    return bytes(data)


@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_fuzz_mutated_real_suites_are_reported_never_raised(data):
    _assert_reported_not_raised(data)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.binary(max_size=2000), st.sampled_from(["bot.robot", "keys.resource", "__init__.robot"]))
def test_fuzz_random_bytes_are_reported_never_raised(data, name):
    _assert_reported_not_raised(data, name)


@settings(max_examples=10, deadline=None, derandomize=True)
@given(st.integers(1, 400), st.sampled_from(["FOR    ${i}    IN    a", "IF    1", "TRY", "WHILE    1"]))
def test_fuzz_deep_nesting_is_reported_never_raised(depth, opener):
    body = "".join("    " + opener + "\n" for _ in range(depth)) + "        Click Element    id:x\n"
    body += "".join("    END\n" for _ in range(depth))
    _assert_reported_not_raised(("*** Settings ***\nLibrary    SeleniumLibrary\n*** Tasks ***\nT\n" + body).encode())


@settings(max_examples=5, deadline=None, derandomize=True)
@given(st.integers(10_000, 1_000_000), st.sampled_from(["${X}", "id:", "https://x/", "%{", "\\"]))
def test_fuzz_huge_arguments_are_reported_never_raised(size, piece):
    arg = (piece * (size // len(piece)))[:size]
    text = (f"*** Settings ***\nLibrary    SeleniumLibrary\n*** Variables ***\n${{X}}    {arg}\n"
            f"*** Tasks ***\nT\n    Click Element    {arg}\n    Go To    ${{X}}\n")
    _assert_reported_not_raised(text.encode())
