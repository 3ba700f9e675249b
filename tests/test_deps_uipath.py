"""UiPath projects' dependencies, read from their own files (botwatch.deps.uipath).

Three real projects written by others (tests/corpus/deps/uipath/, SOURCES.md) give exactly the
dependencies of their hand-checked lists; every form the extractor reads has a focused test on a
workflow shaped as Studio writes it; broken and hostile files are reported with file and line,
never raised, and never hang (hypothesis-fuzzed).
"""

from __future__ import annotations

import json
import os
import random
import re
import tempfile
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from hypothesis import given, settings, strategies as st

from botwatch.deps import uipath
from botwatch.deps.model import Extraction
from botwatch.deps.uipath_values import literal, selector_top, string_literal
from fuzzing import bounded

CORPUS = Path(__file__).parent / "corpus" / "deps" / "uipath"
PROJECTS = {  # corpus folder -> the project inside it
    "UiPath-Services__StudioTemplates": "REFramework/contentFiles/any/any/pt0/VisualBasic",
    "RakeshMadhavakurup__UiPath-Bot-Optimizer-Framework": "Bot Optimizer Framework",
    "yashbrahmbhatt__uipath": "uipath-libraries/Yash.RBC.Activities",
}
FIELDS = ("kind", "value", "file", "line", "context", "screen", "app")

NS = ('xmlns="http://schemas.microsoft.com/netfx/2009/xaml/activities" '
      'xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" '
      'xmlns:sap2010="http://schemas.microsoft.com/netfx/2010/xaml/activities/presentation" '
      'xmlns:ui="http://schemas.uipath.com/workflow/activities" '
      'xmlns:uix="http://schemas.uipath.com/workflow/activities/uix" '
      'xmlns:x="http://schemas.microsoft.com/winfx/2006/xaml" xmlns:this="clr-namespace:"')
PROJECT_JSON = {"name": "Test", "main": "Main.xaml", "dependencies": {}, "studioVersion": "23.10.0.0"}


def workflow(body: str, arguments: str = "") -> str:
    """A workflow as Studio saves it: the root, then `body` from line 2 on."""
    return f'<Activity mc:Ignorable="sap2010" x:Class="Main" {arguments} {NS}>\n{body}\n</Activity>\n'


def project(tmp: Path, files: dict[str, str | bytes], project_json: dict | str | None = None) -> Path:
    folder = tmp / "proj"
    folder.mkdir(parents=True, exist_ok=True)
    pj = project_json if project_json is not None else PROJECT_JSON
    (folder / "project.json").write_text(pj if isinstance(pj, str) else json.dumps(pj, indent=2), encoding="utf-8")
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return folder


def read(tmp: Path, files: dict[str, str | bytes], **kw) -> Extraction:
    folder = project(tmp, files, **kw)
    return uipath.extract(folder, folder)


def rows(extraction: Extraction, kind: str | None = None) -> set[tuple]:
    return {tuple(getattr(d, f) for f in FIELDS) for d in extraction.dependencies if kind in (None, d.kind)}


def idref(name: str, n: int = 1) -> str:
    return f'sap2010:WorkflowViewState.IdRef="{name}_{n}"'


# -- the real projects -------------------------------------------------------------------------------

@pytest.mark.parametrize("corpus", sorted(PROJECTS))
def test_real_projects_give_exactly_their_hand_checked_dependencies(corpus):
    root = CORPUS / corpus
    expected = json.loads((CORPUS / f"{corpus}.expected.json").read_text(encoding="utf-8"))
    extraction = uipath.extract(root / PROJECTS[corpus], root)
    assert extraction.problems == []
    got = rows(extraction)
    want = {tuple(e[f] for f in FIELDS) for e in expected}
    assert sorted(got - want) == [] and sorted(want - got) == []
    assert len(extraction.dependencies) == len(expected)  # and nothing twice


@pytest.mark.parametrize("corpus", sorted(PROJECTS))
def test_each_hand_checked_entry_is_on_the_line_it_names(corpus):
    """The expected lists themselves: each value (or the selector whose top names it) is written
    on the line its entry gives, as the file escapes it."""
    root = CORPUS / corpus
    for entry in json.loads((CORPUS / f"{corpus}.expected.json").read_text(encoding="utf-8")):
        lines = (root / entry["file"]).read_text(encoding="utf-8-sig").split("\n")
        line = lines[entry["line"] - 1]
        value = entry["value"]
        assert value in line or escape(value) in line or value in re.sub(r"[\\/]+", "/", line), entry


@pytest.mark.parametrize("corpus", sorted(PROJECTS))
def test_real_projects_steps_are_their_activities_in_document_order(corpus):
    root = CORPUS / corpus
    extraction = uipath.extract(root / PROJECTS[corpus], root)
    by_file: dict[str, list[int]] = {}
    for step in extraction.steps:
        by_file.setdefault(step.file, []).append(step.line)
    assert by_file and all(lines == sorted(lines) for lines in by_file.values())
    names = {s.name for s in extraction.steps}
    assert "InvokeWorkflowFile" in names and not names & {"InArgument", "Variable", "TargetAnchorable", "Catch"}
    assert extraction.files_read >= len(by_file)


def test_the_object_repository_project_gives_its_elements_with_their_screens():
    root = CORPUS / "yashbrahmbhatt__uipath"
    extraction = uipath.extract(root / PROJECTS["yashbrahmbhatt__uipath"], root)
    repo = [d for d in extraction.dependencies if d.context.startswith("Object Repository")]
    assert {d.value for d in repo if d.kind == "application"} == {"RBC", "chrome.exe"}
    save = [d for d in repo if d.kind == "selector" and d.context.endswith("/ Save As / Save")]
    assert [(d.value, d.screen, d.app) for d in save] == [("<wnd ctrlid='1' title='&amp;Save' />", "Save As", "chrome.exe")]


# -- classic activities --------------------------------------------------------------------------------

CLASSIC = workflow(f"""  <Sequence {idref('Sequence')}>
    <ui:BrowserScope BrowserType="Chrome" DisplayName="Attach Browser 'ACME'" {idref('BrowserScope')} Selector="&lt;html app='chrome.exe' title='ACME System 1 - Dashboard' /&gt;">
      <ui:BrowserScope.Body>
        <ActivityAction>
          <Sequence {idref('Sequence', 2)}>
            <ui:Click ClickType="CLICK_SINGLE" {idref('Click')}>
              <ui:Click.Target>
                <ui:Target ClippingRegion="{{x:Null}}" Element="{{x:Null}}" Selector="&lt;webctrl aaname='Work Items' tag='BUTTON' /&gt;" WaitForReady="COMPLETE" />
              </ui:Click.Target>
            </ui:Click>
            <ui:TypeInto Text="[in_Text]" {idref('TypeInto')}>
              <ui:TypeInto.Target>
                <ui:Target Selector="[&quot;&lt;webctrl id='email' tag='INPUT' /&gt;&quot;]" />
              </ui:TypeInto.Target>
            </ui:TypeInto>
            <ui:GetText {idref('GetText')}>
              <ui:GetText.Target>
                <ui:Target Selector="[&quot;&lt;webctrl id='&quot; + in_Id + &quot;' /&gt;&quot;]" />
              </ui:GetText.Target>
            </ui:GetText>
          </Sequence>
        </ActivityAction>
      </ui:BrowserScope.Body>
    </ui:BrowserScope>
    <ui:ElementExists {idref('ElementExists')}>
      <ui:ElementExists.Target>
        <ui:Target>
          <ui:Target.Selector>
            <InArgument x:TypeArguments="x:String">&lt;wnd app='notepad.exe' cls='Notepad' title='*Notepad' /&gt;&lt;wnd cls='Edit' /&gt;</InArgument>
          </ui:Target.Selector>
        </ui:Target>
      </ui:ElementExists.Target>
    </ui:ElementExists>
  </Sequence>""")


def test_classic_selectors_take_their_window_from_the_container_around_them(tmp_path):
    x = read(tmp_path, {"Main.xaml": CLASSIC})
    acme, app = "ACME System 1 - Dashboard", "chrome.exe"
    assert rows(x, "application") == {("application", app, "Main.xaml", 3, "BrowserScope", "", ""),
                                      ("application", "notepad.exe", "Main.xaml", 30, "ElementExists", "", "")}
    assert rows(x, "screen") == {("screen", acme, "Main.xaml", 3, "BrowserScope", "", app),
                                 ("screen", "*Notepad", "Main.xaml", 30, "ElementExists", "", "notepad.exe")}
    assert rows(x, "selector") == {
        ("selector", "<webctrl aaname='Work Items' tag='BUTTON' />", "Main.xaml", 9, "Click", acme, app),
        ("selector", "<webctrl id='email' tag='INPUT' />", "Main.xaml", 14, "TypeInto", acme, app),  # a VB literal
        ("selector", "<wnd app='notepad.exe' cls='Notepad' title='*Notepad' /><wnd cls='Edit' />", "Main.xaml", 30,
         "ElementExists", "*Notepad", "notepad.exe"),
    }  # GetText's selector is built at run time: not a literal, skipped
    assert [s.name for s in x.steps] == ["Sequence", "BrowserScope", "Sequence", "Click", "TypeInto", "GetText",
                                         "ElementExists"]
    assert x.problems == []


def test_attach_window_and_open_application_give_the_application_they_start(tmp_path):
    body = f"""  <ui:OpenApplication Arguments="[in_Args]" FileName="C:\\Program Files\\SAP\\saplogon.exe" {idref('OpenApplication')} Selector="&lt;wnd app='saplogon.exe' cls='#32770' title='SAP Logon 770' /&gt;" />
  <ui:WindowScope {idref('WindowScope')} Selector="&lt;wnd app='saplogon.exe' title='SAP Easy Access' /&gt;">
    <ui:WindowScope.Body>
      <ActivityAction>
        <ui:Click {idref('Click')}><ui:Click.Target><ui:Target Selector="&lt;wnd ctrlname='tbar[0]/okcd' /&gt;" /></ui:Click.Target></ui:Click>
      </ActivityAction>
    </ui:WindowScope.Body>
  </ui:WindowScope>"""
    x = read(tmp_path, {"Main.xaml": workflow(body)})
    assert rows(x, "file") == {("file", "C:\\Program Files\\SAP\\saplogon.exe", "Main.xaml", 2, "OpenApplication", "", "")}
    assert rows(x, "screen") == {("screen", "SAP Logon 770", "Main.xaml", 2, "OpenApplication", "", "saplogon.exe"),
                                 ("screen", "SAP Easy Access", "Main.xaml", 3, "WindowScope", "", "saplogon.exe")}
    assert rows(x, "selector") == {("selector", "<wnd ctrlname='tbar[0]/okcd' />", "Main.xaml", 6, "Click",
                                    "SAP Easy Access", "saplogon.exe")}


# -- modern activities ----------------------------------------------------------------------------------

MODERN = workflow(f"""  <uix:NApplicationCard DisplayName="Use Browser Chrome: Invoices" {idref('NApplicationCard')}>
    <uix:NApplicationCard.Body>
      <ActivityAction>
        <Sequence {idref('Sequence')}>
          <uix:NClick {idref('NClick')}>
            <uix:NClick.Target>
              <uix:TargetAnchorable FullSelectorArgument="&lt;webctrl id='submit' tag='BUTTON' /&gt;" FuzzySelectorArgument="&lt;webctrl aaname='Submit' /&gt;" Guid="a" />
            </uix:NClick.Target>
          </uix:NClick>
          <uix:NTypeInto {idref('NTypeInto')}>
            <uix:NTypeInto.Target>
              <uix:TargetAnchorable FuzzySelectorArgument="&lt;webctrl id='amount' /&gt;" ScopeSelectorArgument="&lt;html app='msedge.exe' title='Invoice - Edit' /&gt;" />
            </uix:NTypeInto.Target>
          </uix:NTypeInto>
          <uix:NGetText {idref('NGetText')}>
            <uix:NGetText.Target>
              <uix:TargetAnchorable Reference="lib/obj">
                <uix:TargetAnchorable.FullSelectorArgument>
                  <InArgument x:TypeArguments="x:String">[in_Selector]</InArgument>
                </uix:TargetAnchorable.FullSelectorArgument>
              </uix:TargetAnchorable>
            </uix:NGetText.Target>
          </uix:NGetText>
        </Sequence>
      </ActivityAction>
    </uix:NApplicationCard.Body>
    <uix:NApplicationCard.TargetApp>
      <uix:TargetApp Area="0, 0, 0, 0" BrowserType="Edge" Selector="&lt;html app='msedge.exe' title='Invoices' /&gt;" Url="https://erp.example.com/invoices" />
    </uix:NApplicationCard.TargetApp>
  </uix:NApplicationCard>
  <uix:NApplicationCard {idref('NApplicationCard', 2)}>
    <uix:NApplicationCard.TargetApp>
      <uix:TargetApp Arguments="-pwd hunter2" FilePath="C:\\Apps\\ledger.exe" Selector="&lt;wnd app='ledger.exe' title='Ledger' /&gt;" />
    </uix:NApplicationCard.TargetApp>
  </uix:NApplicationCard>""")


def test_modern_targets_take_their_window_from_their_scope_else_from_the_card(tmp_path):
    x = read(tmp_path, {"Main.xaml": MODERN})
    assert rows(x, "selector") == {
        ("selector", "<webctrl id='submit' tag='BUTTON' />", "Main.xaml", 8, "NClick", "Invoices", "msedge.exe"),
        ("selector", "<webctrl id='amount' />", "Main.xaml", 13, "NTypeInto", "Invoice - Edit", "msedge.exe"),
    }  # the strict selector when there is one, else the fuzzy one; an expression is skipped
    assert rows(x, "screen") == {("screen", "Invoice - Edit", "Main.xaml", 13, "NTypeInto", "", "msedge.exe"),
                                 ("screen", "Invoices", "Main.xaml", 29, "NApplicationCard", "", "msedge.exe"),
                                 ("screen", "Ledger", "Main.xaml", 34, "NApplicationCard", "", "ledger.exe")}
    assert rows(x, "url") == {("url", "https://erp.example.com/invoices", "Main.xaml", 29, "NApplicationCard", "", "")}
    assert rows(x, "file") == {("file", "C:\\Apps\\ledger.exe", "Main.xaml", 34, "NApplicationCard", "", "")}
    assert not any("hunter2" in d.value for d in x.dependencies)  # a desktop app's arguments are not read
    assert [s.name for s in x.steps] == ["NApplicationCard", "Sequence", "NClick", "NTypeInto", "NGetText",
                                         "NApplicationCard"]


# -- queues, assets, files, mail, URLs, workflows ----------------------------------------------------

ORCHESTRATOR = workflow(f"""  <Sequence {idref('Sequence')}>
    <ui:AddQueueItem QueueType="Invoices" {idref('AddQueueItem')} />
    <ui:GetTransactionItem {idref('GetTransactionItem')}>
      <ui:GetTransactionItem.QueueType>
        <InArgument x:TypeArguments="x:String">[&quot;Claims &quot;&quot;EU&quot;&quot;&quot;]</InArgument>
      </ui:GetTransactionItem.QueueType>
    </ui:GetTransactionItem>
    <ui:BulkAddQueueItems {idref('BulkAddQueueItems')}>
      <ui:BulkAddQueueItems.QueueName>
        <InArgument x:TypeArguments="x:String">
          <CSharpValue x:TypeArguments="x:String">@"Orders\\2024"</CSharpValue>
        </InArgument>
      </ui:BulkAddQueueItems.QueueName>
    </ui:BulkAddQueueItems>
    <ui:AddQueueItem QueueType="[in_Config(&quot;Queue&quot;).ToString]" {idref('AddQueueItem', 2)} />
    <ui:GetRobotAsset AssetName="ERP_URL" {idref('GetRobotAsset')} />
    <ui:GetRobotCredential AssetName="ERP_Login" Password="[pwd]" Username="[user]" {idref('GetRobotCredential')} />
    <ui:GetCredential AssetName="{{}}{{legacy}}" {idref('GetCredential')} />
    <ui:InvokeWorkflowFile WorkflowFileName="Framework\\\\Login.xaml" {idref('InvokeWorkflowFile')}>
      <ui:InvokeWorkflowFile.Arguments>
        <InArgument x:TypeArguments="x:String" x:Key="in_Report">Data\\Output\\report.csv</InArgument>
        <InArgument x:TypeArguments="x:String" x:Key="in_Portal">https://portal.example.com/login</InArgument>
        <InArgument x:TypeArguments="x:String" x:Key="in_Mode">fast</InArgument>
        <OutArgument x:TypeArguments="x:String" x:Key="out_File">[outFile.xlsx]</OutArgument>
      </ui:InvokeWorkflowFile.Arguments>
    </ui:InvokeWorkflowFile>
    <ui:InvokeProcess ProcessName="Monthly_Close" {idref('InvokeProcess')} />
    <ui:KillProcess ProcessName="EXCEL" {idref('KillProcess')} />
  </Sequence>""")


def test_queues_assets_credentials_and_workflows_literal_names_only(tmp_path):
    x = read(tmp_path, {"Main.xaml": ORCHESTRATOR})
    assert rows(x, "queue") == {("queue", "Invoices", "Main.xaml", 3, "AddQueueItem", "", ""),
                                ("queue", 'Claims "EU"', "Main.xaml", 6, "GetTransactionItem", "", ""),
                                ("queue", "Orders\\2024", "Main.xaml", 12, "BulkAddQueueItems", "", "")}
    assert rows(x, "asset") == {("asset", "ERP_URL", "Main.xaml", 17, "GetRobotAsset", "", "")}
    assert rows(x, "credential") == {("credential", "ERP_Login", "Main.xaml", 18, "GetRobotCredential", "", ""),
                                     ("credential", "{legacy}", "Main.xaml", 19, "GetCredential", "", "")}
    assert rows(x, "workflow") == {("workflow", "Framework/Login.xaml", "Main.xaml", 20, "InvokeWorkflowFile", "", ""),
                                   ("workflow", "Monthly_Close", "Main.xaml", 28, "InvokeProcess", "", "")}
    assert rows(x, "file") == {("file", "Data\\Output\\report.csv", "Main.xaml", 22, "InvokeWorkflowFile", "", "")}
    assert rows(x, "url") == {("url", "https://portal.example.com/login", "Main.xaml", 23, "InvokeWorkflowFile", "", "")}
    assert rows(x, "application") == {("application", "EXCEL", "Main.xaml", 29, "KillProcess", "", "")}


MAIL_AND_FILES = workflow(f"""  <Sequence {idref('Sequence')}>
    <ui:GetOutlookMailMessages Account="ap@acme.example" MailFolder="Inbox\\Invoices" {idref('GetOutlookMailMessages')} />
    <ui:GetIMAPMailMessages Email="robot@acme.example" Password="s3cr3t-imap" Port="993" Server="imap.acme.example" {idref('GetIMAPMailMessages')} />
    <ui:SendSmtpMailMessage Email="robot@acme.example" Server="smtp.acme.example" To="boss@acme.example" Subject="Done" {idref('SendSmtpMailMessage')} />
    <ui:GetOutlookMailMessages MailFolder="Inbox" {idref('GetOutlookMailMessages', 2)} />
    <ui:ReadTextFile FileName="C:\\data\\in.txt" {idref('ReadTextFile')} />
    <ui:ExcelApplicationScope WorkbookPath="Data\\Config.xlsx" {idref('ExcelApplicationScope')} />
    <ui:PathExists Path="\\\\fileserver\\share\\drop" {idref('PathExists')} />
    <ui:OpenBrowser Url="https://www.example.com/start" {idref('OpenBrowser')} />
    <ui:NavigateTo Url="https://user:pa55word@intranet.example.com/page" {idref('NavigateTo')} />
    <ui:HttpClient EndPoint="https://api.example.com/v1/orders" Method="GET" {idref('HttpClient')} />
    <ui:HttpClient EndPoint="[base + &quot;/v1&quot;]" {idref('HttpClient', 2)} />
  </Sequence>""", arguments='this:Main.in_Orchestrator="https://cloud.uipath.com/acme" this:Main.in_Config="Data\\Config.xlsx" this:Main.in_Token="abc"')


def test_mailboxes_files_and_urls(tmp_path):
    x = read(tmp_path, {"Main.xaml": MAIL_AND_FILES})
    assert rows(x, "mailbox") == {
        ("mailbox", "ap@acme.example/Inbox\\Invoices", "Main.xaml", 3, "GetOutlookMailMessages", "", ""),
        ("mailbox", "robot@acme.example", "Main.xaml", 4, "GetIMAPMailMessages", "", ""),
        ("mailbox", "robot@acme.example", "Main.xaml", 5, "SendSmtpMailMessage", "", ""),
        ("mailbox", "Inbox", "Main.xaml", 6, "GetOutlookMailMessages", "", ""),
    }  # recipients (To) are a message's data, not a mailbox the bot depends on
    assert rows(x, "file") == {("file", "C:\\data\\in.txt", "Main.xaml", 7, "ReadTextFile", "", ""),
                               ("file", "Data\\Config.xlsx", "Main.xaml", 8, "ExcelApplicationScope", "", ""),
                               ("file", "\\\\fileserver\\share\\drop", "Main.xaml", 9, "PathExists", "", ""),
                               ("file", "Data\\Config.xlsx", "Main.xaml", 1, "argument in_Config", "", "")}
    urls = rows(x, "url")
    assert urls == {("url", "imap.acme.example", "Main.xaml", 4, "GetIMAPMailMessages", "", ""),
                    ("url", "smtp.acme.example", "Main.xaml", 5, "SendSmtpMailMessage", "", ""),
                    ("url", "https://www.example.com/start", "Main.xaml", 10, "OpenBrowser", "", ""),
                    ("url", "https://***@intranet.example.com/page", "Main.xaml", 11, "NavigateTo", "", ""),
                    ("url", "https://api.example.com/v1/orders", "Main.xaml", 12, "HttpClient", "", ""),
                    ("url", "https://cloud.uipath.com/acme", "Main.xaml", 1, "argument in_Orchestrator", "", "")}
    text = json.dumps([d.__dict__ for d in x.dependencies])
    assert "s3cr3t" not in text and "pa55word" not in text and "boss@" not in text and "abc" not in text


def test_project_json_packages_are_libraries_on_their_own_lines(tmp_path):
    pj = {"name": "P", "main": "Main.xaml", "dependencies": {"UiPath.Excel.Activities": "[2.24.1]",
                                                           "Acme.Ledger.Library": "1.2.0"}, "studioVersion": "24.10.1"}
    x = read(tmp_path, {"Main.xaml": workflow("")}, project_json=pj)
    assert rows(x, "library") == {("library", "UiPath.Excel.Activities", "project.json", 5, "[2.24.1]", "", ""),
                                  ("library", "Acme.Ledger.Library", "project.json", 6, "1.2.0", "", "")}


# -- values and selectors --------------------------------------------------------------------------

@pytest.mark.parametrize("raw, value", [
    ("Invoices", "Invoices"), ("{x:Null}", None), ("{}{literal}", "{literal}"), ("[in_Queue]", None),
    ('["Invoices"]', "Invoices"), ('[ "say ""hi""" ]', 'say "hi"'), ('["a" + b]', None), ('["a" & "b"]', None),
    ("[]", None), ("", ""),
])
def test_a_property_counts_only_as_a_literal(raw, value):
    assert literal(raw) == value


@pytest.mark.parametrize("expression, language, value", [
    ('"C:\\\\in\\\\a.txt"', "csharp", "C:\\in\\a.txt"), ('@"C:\\in\\a.txt"', "csharp", "C:\\in\\a.txt"),
    ('"tab\\there\\u00e9"', "csharp", "tab\there\u00e9"), ('"a" + b', "csharp", None), ('in_Name', "csharp", None),
    ('"C:\\in"', "vb", "C:\\in"), ('"unterminated', "vb", None), ('"a" "b"', "vb", None),
])
def test_string_literals_of_both_expression_languages(expression, language, value):
    assert string_literal(expression, language) == value


def test_the_top_of_a_selector_names_the_application_and_screen():
    top = selector_top("<html app='chrome.exe' title='R&amp;D &apos;Portal&apos;' /><webctrl id='x' />")
    assert top and (top.tag, top.app, top.screen) == ("html", "chrome.exe", "R&D 'Portal'")
    top = selector_top('<html app="iexplore.exe" url="https://acme.example/*" />')
    assert top and top.screen == "https://acme.example/*"
    assert selector_top("<webctrl id='x' />") is None and selector_top("<wnd cls='Edit' title='x' />") is None
    assert selector_top("not a selector") is None and selector_top("") is None


# -- the Object Repository -----------------------------------------------------------------------------

def _object(folder: Path, kind: str, name: str | None = None, content: str | None = None, data: str = "") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".type").write_text(kind, encoding="utf-8")
    if name is not None:
        (folder / ".metadata").write_bytes(("\ufeff{\n  \"Type\": \"%s\",\n  \"Name\": %s\n}" % (kind, json.dumps(name)))
                                           .encode("utf-8"))
    if content is not None:
        path = folder / ".data" / data / ".content"
        path.parent.mkdir(parents=True)
        path.write_text('<?xml version="1.0" encoding="utf-16"?>\n' + content, encoding="utf-8")


UIX = 'xmlns="http://schemas.uipath.com/workflow/activities/uix" xmlns:x="http://schemas.microsoft.com/winfx/2006/xaml"'


def test_object_repository_screens_and_elements(tmp_path):
    folder = project(tmp_path, {"Main.xaml": workflow("")})
    objects = folder / ".objects"
    _object(objects, "Library")
    _object(objects / "a1", "App", "Ledger")
    _object(objects / "a1" / "v1", "AppVersion", "1.0.0")
    screen = objects / "a1" / "v1" / "s1"
    _object(screen, "Screen", "Main Window",
            f'<ObjectRepositoryScreenData {UIX}>\n  <ObjectRepositoryScreenData.Data>\n'
            f'    <TargetApp x:Key="TargetApp" FilePath="C:\\Apps\\ledger.exe" Selector="&lt;wnd app=\'ledger.exe\' title=\'Ledger\' /&gt;" />\n'
            f'  </ObjectRepositoryScreenData.Data>\n</ObjectRepositoryScreenData>', "ObjectRepositoryScreenData")
    _object(screen / "g1", "Element", "Toolbar")  # a group: a name, no descriptor
    _object(screen / "g1" / "e1", "Element", "Post",
            f'<ObjectRepositoryTargetData {UIX}>\n  <ObjectRepositoryTargetData.Data>\n'
            f'    <TargetAnchorable x:Key="TargetAnchorable" FullSelectorArgument="&lt;ctrl name=\'Post\' role=\'push button\' /&gt;" />\n'
            f'  </ObjectRepositoryTargetData.Data>\n</ObjectRepositoryTargetData>', "ObjectRepositoryTargetData")
    x = uipath.extract(folder, folder)
    assert x.problems == []
    s = ".objects/a1/v1/s1/.data/ObjectRepositoryScreenData/.content"
    e = ".objects/a1/v1/s1/g1/e1/.data/ObjectRepositoryTargetData/.content"
    assert rows(x) == {
        ("application", "Ledger", ".objects/a1/.metadata", 3, "Object Repository", "", ""),
        ("application", "ledger.exe", s, 4, "Object Repository: Ledger / Main Window", "", ""),
        ("screen", "Ledger", s, 4, "Object Repository: Ledger / Main Window", "", "ledger.exe"),
        ("file", "C:\\Apps\\ledger.exe", s, 4, "Object Repository: Ledger / Main Window", "", ""),
        ("selector", "<ctrl name='Post' role='push button' />", e, 4,  # its screen's window: it names none
         "Object Repository: Ledger / Main Window / Toolbar / Post", "Ledger", "ledger.exe"),
    }


def test_object_repository_damage_is_reported_with_file_and_line(tmp_path):
    folder = project(tmp_path, {"Main.xaml": workflow("")})
    objects = folder / ".objects"
    _object(objects / "a1", "App")
    (objects / "a1" / ".metadata").write_text('{\n  "Name": "Ledger",\n  oops\n}', encoding="utf-8")
    _object(objects / "a2", "App", "Good")
    _object(objects / "a2" / "s1", "Screen", "Home", f"<ObjectRepositoryScreenData {UIX}>\n  <TargetApp>\n",
            "ObjectRepositoryScreenData")
    x = uipath.extract(folder, folder)
    assert ("application", "Good", ".objects/a2/.metadata", 3, "Object Repository", "", "") in rows(x)
    problems = {(p.file, p.line) for p in x.problems}
    assert (".objects/a1/.metadata", 3) in problems
    assert (".objects/a2/s1/.data/ObjectRepositoryScreenData/.content", 4) in problems


# -- what a project is, what is read ---------------------------------------------------------------

@pytest.mark.parametrize("content, answer", [
    (json.dumps(PROJECT_JSON), True),
    (json.dumps({"name": "old", "main": "Main.xaml", "toolVersion": "18.2"}), True),
    (json.dumps({"name": "coded", "main": "Main.cs"}), True),
    (json.dumps({"name": "npm", "main": "index.js", "dependencies": {"x": "1"}}), False),
    (json.dumps({"frameworks": {"netcoreapp1.0": {}}, "version": "1.0"}), False),
    ("[1, 2]", False), ("{not json", False), ("", False), ("\ufeff" + json.dumps(PROJECT_JSON), True),
])
def test_is_uipath_project(tmp_path, content, answer):
    path = tmp_path / "project.json"
    path.write_text(content, encoding="utf-8")
    assert uipath.is_uipath_project(path) is answer


def test_is_uipath_project_never_raises_on_a_missing_file_or_a_folder(tmp_path):
    assert uipath.is_uipath_project(tmp_path / "project.json") is False
    (tmp_path / "d" / "project.json").mkdir(parents=True)
    assert uipath.is_uipath_project(tmp_path / "d" / "project.json") is False


QUEUE = workflow(f'  <ui:AddQueueItem QueueType="Q" {idref("AddQueueItem")} />')


def test_studio_folders_and_nested_projects_are_not_read_as_its_workflows(tmp_path):
    folder = project(tmp_path, {"Main.xaml": QUEUE, ".local/cache.xaml": QUEUE, ".templates/T.xaml": QUEUE,
                                "Sub/Part.xaml": QUEUE, "Inner/project.json": json.dumps(PROJECT_JSON),
                                "Inner/Main.xaml": QUEUE, "NotAProject/project.json": "{}", "NotAProject/W.XAML": QUEUE})
    x = uipath.extract(folder, tmp_path)
    assert {d.file for d in x.dependencies} == {"proj/Main.xaml", "proj/Sub/Part.xaml", "proj/NotAProject/W.XAML"}


@pytest.mark.posix_only("creating a symbolic link needs a privilege on Windows")
def test_a_linked_workflow_is_not_followed(tmp_path):
    outside = tmp_path / "elsewhere.xaml"
    outside.write_text(QUEUE, encoding="utf-8")
    folder = project(tmp_path, {"Main.xaml": workflow("")})
    os.symlink(outside, folder / "Link.xaml")
    assert uipath.extract(folder, folder).dependencies == []


# -- broken and hostile files ----------------------------------------------------------------------

BOMB = ('<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
        ' <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">\n'
        ' <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">\n]>\n'
        f'<Activity {NS}><ui:AddQueueItem QueueType="&lol3;" /></Activity>')
EXTERNAL = ('<?xml version="1.0"?>\n<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
            f'<Activity {NS}><ui:AddQueueItem QueueType="&x;" /></Activity>')


@pytest.mark.parametrize("content, line, words", [
    (BOMB, 2, "DOCTYPE"),
    (EXTERNAL, 2, "DOCTYPE"),
    (workflow(f'  <ui:AddQueueItem QueueType="Q" {idref("AddQueueItem")}>\n  <Sequence>'), 4, "well-formed"),
    ("", 1, "well-formed"),
    (b"<Activity>\n\n<a>\xff\xfe</a></Activity>", 3, "UTF-8"),
    ('<ResourceDictionary xmlns="http://schemas.microsoft.com/winfx/2006/xaml/presentation">\n</ResourceDictionary>',
     1, "not a workflow"),
    (f"<Activity {NS}>\n<ui:AddQueueItem QueueType='x' xmlns:ui='urn:a' ui:QueueType='y' />\n<ui:B/><zz:C/></Activity>",
     3, "well-formed"),
])
def test_bad_workflows_are_reported_with_file_and_line_and_skipped(tmp_path, content, line, words):
    x = read(tmp_path, {"Main.xaml": workflow(f'  <ui:AddQueueItem QueueType="Good" {idref("AddQueueItem")} />'),
                        "Bad.xaml": content})
    assert [(p.file, p.line) for p in x.problems] == [("Bad.xaml", line)]
    assert words in x.problems[0].message
    assert {d.value for d in x.dependencies} == {"Good"}  # the rest of the project is still read


def test_a_project_json_that_is_not_json_is_reported_with_its_line(tmp_path):
    x = read(tmp_path, {"Main.xaml": workflow("")}, project_json='{\n  "name": "x",\n  "dependencies": {,\n}')
    assert [(p.file, p.line) for p in x.problems] == [("project.json", 3)]


def test_an_endless_value_is_skipped_and_reported(tmp_path):
    huge = "<webctrl id='" + "x" * 100_000 + "' />"
    body = f'  <ui:Click {idref("Click")}><ui:Click.Target><ui:Target Selector="{escape(huge)}" /></ui:Click.Target></ui:Click>'
    x = read(tmp_path, {"Main.xaml": workflow(body)})
    assert x.dependencies == [] and [(p.file, p.line) for p in x.problems] == [("Main.xaml", 2)]


def test_a_workflow_without_designer_ids_still_gives_its_activities(tmp_path):
    body = '  <Sequence>\n    <ui:AddQueueItem QueueType="Q" />\n    <ui:Target Selector="x" />\n    <Variable x:TypeArguments="x:String" Name="v" />\n  </Sequence>'
    x = read(tmp_path, {"Main.xaml": workflow(body)})
    assert [(s.line, s.name) for s in x.steps] == [(2, "Sequence"), (3, "AddQueueItem")]
    assert rows(x, "queue") == {("queue", "Q", "Main.xaml", 3, "AddQueueItem", "", "")}


def test_deep_nesting_costs_no_recursion(tmp_path):
    depth = 50_000
    body = f'<Sequence {idref("Sequence")}>' * depth + f'<ui:AddQueueItem QueueType="Deep" {idref("AddQueueItem")} />' + "</Sequence>" * depth
    with bounded("a workflow nested 50,000 deep"):
        x = read(tmp_path, {"Main.xaml": workflow(body)})
    assert rows(x, "queue") == {("queue", "Deep", "Main.xaml", 2, "AddQueueItem", "", "")}
    assert len(x.steps) == depth + 1


# -- fuzzing -----------------------------------------------------------------------------------------

SAMPLES = [p.read_bytes() for corpus, inner in sorted(PROJECTS.items())
           for p in sorted((CORPUS / corpus / inner).rglob("*.xaml"))[:3]] + [CLASSIC.encode(), MODERN.encode(),
                                                                            ORCHESTRATOR.encode()]


def _mutate(data: bytes, seed: int, cuts: int) -> bytes:
    rng = random.Random(seed)
    data = bytearray(data)
    for _ in range(cuts):
        op, at = rng.randrange(4), rng.randrange(len(data) + 1)
        if op == 0:
            del data[at:]  # truncated
        elif op == 1 and at < len(data):
            data[at] = rng.randrange(256)  # a byte flipped
        elif op == 2:
            data[at:at] = rng.choice([b"<", b">", b"&", b'"', b"</Sequence>", b"<!DOCTYPE x>", b"&lol;", b"\x00",
                                      b"\xff\xfe", b"]]>", b"<ui:Target Selector='", b"[", b"{x:Null}"])
        else:
            del data[at:at + rng.randrange(200)]
    return bytes(data)


def _check(files: dict[str, bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        with bounded(f"extracting {sorted(files)}"):
            x = read(Path(tmp), dict(files))
    for p in x.problems:
        assert p.file in files and isinstance(p.line, int) and p.line >= 1, p
    for d in x.dependencies:
        assert d.file in files and d.line >= 1 and d.value and len(d.value) <= 8192


@settings(max_examples=60, deadline=None)
@given(sample=st.sampled_from(range(len(SAMPLES))), seed=st.integers(0, 2**32), cuts=st.integers(1, 6))
def test_fuzz_mutated_workflows(sample, seed, cuts):
    _check({"Main.xaml": _mutate(SAMPLES[sample], seed, cuts)})


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=2000))
def test_fuzz_random_bytes(data):
    _check({"Main.xaml": data, "Other.xaml": b"<Activity " + data})


@settings(max_examples=20, deadline=None)
@given(size=st.integers(1, 2_000_000), depth=st.integers(0, 3000), char=st.sampled_from(["x", "<", "&amp;", "'", "\u00e9"]))
def test_fuzz_huge_attributes_and_deep_nesting(size, depth, char):
    value = escape(char * (size // len(char)))
    body = ("<Sequence>" * depth + f'<ui:Click><ui:Click.Target><ui:Target Selector="&lt;wnd app=\'{value}\' /&gt;" />'
            f'</ui:Click.Target></ui:Click>' + "</Sequence>" * depth)
    _check({"Main.xaml": workflow(body).encode()})
