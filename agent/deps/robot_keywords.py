"""Which arguments of which library keywords name a dependency: the tables the Robot Framework
extractor reads keyword calls with.

A library is known by the name it is imported with (`Library    SeleniumLibrary`); it brings one
or more keyword families (RPA.Browser.Selenium: SeleniumLibrary's keywords and its own). A
family maps a keyword, normalised as Robot Framework matches names (case, spaces and underscores
ignored), to its roles: the argument (position and parameter name) that is a locator, a URL, a
secret's name, a file... The positions and names are those of the libraries' own signatures
(SeleniumLibrary 6, Browser 19, rpaframework 28).
"""

from __future__ import annotations

from dataclasses import dataclass


def normalize(name: str) -> str:
    """A keyword or library name as Robot Framework compares it: lower-case, no spaces or underscores."""
    return "".join(name.lower().split()).replace("_", "")


@dataclass(frozen=True)
class Role:
    kind: str  # the dependency kind of the argument (model.KINDS)
    position: int  # among the positional arguments, 0-based
    parameter: str  # its name, for the `parameter=value` form
    secret: bool = False  # a secret's value: only an environment variable's name is ever taken


Table = dict[str, tuple[Role, ...]]


def _all(kind: str, position: int, parameter: str, keywords: str, secret: bool = False) -> Table:
    """The same role for every keyword in `keywords` (one a line)."""
    role = Role(kind, position, parameter, secret)
    return {normalize(k): (role,) for k in keywords.strip().splitlines() if k.strip()}


def _merge(*tables: Table) -> Table:
    out: Table = {}
    for table in tables:
        for keyword, roles in table.items():
            out[keyword] = out.get(keyword, ()) + roles
    return out


SELENIUM = _merge(_all("selector", 0, "locator", """
    Assign Id To Element
    Capture Element Screenshot
    Checkbox Should Be Selected
    Checkbox Should Not Be Selected
    Choose File
    Clear Element Text
    Click Button
    Click Element
    Click Element At Coordinates
    Click Image
    Click Link
    Cover Element
    Double Click Element
    Drag And Drop
    Drag And Drop Across Frames
    Drag And Drop By Offset
    Element Attribute Value Should Be
    Element Should Be Disabled
    Element Should Be Enabled
    Element Should Be Focused
    Element Should Be Visible
    Element Should Contain
    Element Should Not Be Visible
    Element Should Not Contain
    Element Text Should Be
    Element Text Should Not Be
    Frame Should Contain
    Get CSS Property Value
    Get Dom Attribute
    Get Element Attribute
    Get Element Count
    Get Element Size
    Get Horizontal Position
    Get List Items
    Get Property
    Get Selected List Label
    Get Selected List Labels
    Get Selected List Value
    Get Selected List Values
    Get Table Cell
    Get Text
    Get Value
    Get Vertical Position
    Get WebElement
    Get WebElements
    Input Password
    Input Text
    List Selection Should Be
    List Should Have No Selections
    Mouse Down
    Mouse Down On Image
    Mouse Down On Link
    Mouse Out
    Mouse Over
    Mouse Up
    Open Context Menu
    Page Should Contain Button
    Page Should Contain Checkbox
    Page Should Contain Element
    Page Should Contain Image
    Page Should Contain Link
    Page Should Contain List
    Page Should Contain Radio Button
    Page Should Contain Textfield
    Page Should Not Contain Button
    Page Should Not Contain Checkbox
    Page Should Not Contain Element
    Page Should Not Contain Image
    Page Should Not Contain Link
    Page Should Not Contain List
    Page Should Not Contain Radio Button
    Page Should Not Contain Textfield
    Press Key
    Press Keys
    Scroll Element Into View
    Select All From List
    Select Checkbox
    Select Frame
    Select From List By Index
    Select From List By Label
    Select From List By Value
    Set Focus To Element
    Simulate Event
    Submit Form
    Table Cell Should Contain
    Table Column Should Contain
    Table Footer Should Contain
    Table Header Should Contain
    Table Row Should Contain
    Table Should Contain
    Textarea Should Contain
    Textarea Value Should Be
    Textfield Should Contain
    Textfield Value Should Be
    Unselect All From List
    Unselect Checkbox
    Unselect From List By Index
    Unselect From List By Label
    Unselect From List By Value
    Wait Until Element Contains
    Wait Until Element Does Not Contain
    Wait Until Element Is Enabled
    Wait Until Element Is Not Visible
    Wait Until Element Is Visible
    Wait Until Page Contains Element
    Wait Until Page Does Not Contain Element
"""), _all("selector", 1, "target", """
    Drag And Drop
"""), _all("url", 0, "url", """
    Open Browser
    Go To
    Location Should Be
"""), _all("url", 0, "expected", """
    Wait Until Location Is
"""), _all("credential", 1, "password", """
    Input Password
""", secret=True))

# RPA.Browser.Selenium's keywords beyond SeleniumLibrary's
RPA_SELENIUM = _merge(_all("selector", 0, "locator", """
    Screenshot
    Click Element When Visible
    Click Button When Visible
    Click Element If Visible
    Click Element When Clickable
    Input Text When Element Is Visible
    Is Element Enabled
    Is Element Visible
    Is Element Disabled
    Is Element Focused
    Is Element Attribute Equal To
    Is Checkbox Selected
    Is Element Text
    Is List Selection
    Is List Selected
    Is Textarea Value
    Is Textfield Value
    Does Frame Contain
    Does Element Contain
    Does Page Contain Button
    Does Page Contain Checkbox
    Does Page Contain Element
    Does Page Contain Image
    Does Page Contain Link
    Does Page Contain List
    Does Page Contain Radio Button
    Does Page Contain Textfield
    Does Table Cell Contain
    Does Table Column Contain
    Does Table Row Contain
    Does Table Footer Contain
    Does Table Header Contain
    Does Table Contain
    Does Textarea Contain
    Does Textfield Contain
    Get Element Status
    Highlight Elements
    Set Element Attribute
"""), _all("url", 0, "url", """
    Open Available Browser
    Open Chrome Browser
    Open Headless Chrome Browser
    Open User Browser
    Is Location
"""))

# the Browser library (Playwright), also as RPA.Browser.Playwright
BROWSER = _merge(_all("selector", 0, "selector", """
    Add Locator Handler Click
    Add Locator Handler Custom
    Check Checkbox
    Clear Text
    Click
    Click With Options
    Deselect Options
    Evaluate JavaScript
    Fill Secret
    Fill Text
    Focus
    Get Aria Snapshot
    Get Attribute
    Get Attribute Names
    Get BoundingBox
    Get Checkbox State
    Get Classes
    Get Client Size
    Get Element
    Get Element Count
    Get Element States
    Get Elements
    Get Property
    Get Scroll Position
    Get Scroll Size
    Get Select Options
    Get Selected Options
    Get Style
    Get Table Cell Index
    Get Table Row Index
    Get Text
    Highlight Elements
    Hover
    Mouse Move Relative To
    Press Keys
    Scroll By
    Scroll To
    Scroll To Element
    Select Options By
    Tap
    Type Secret
    Type Text
    Uncheck Checkbox
    Upload File By Selector
    Wait For Elements State
"""), _all("selector", 1, "click_selector", """
    Add Locator Handler Click
"""), _all("selector", 0, "selector_from", """
    Drag And Drop
    Drag And Drop Relative To
"""), _all("selector", 1, "selector_to", """
    Drag And Drop
"""), _all("selector", 1, "selector", """
    Take Screenshot
"""), _all("url", 0, "url", """
    New Page
    Go To
"""), _all("credential", 1, "secret", """
    Fill Secret
    Type Secret
""", secret=True))

# RPA.Windows: locators such as `name:Submit`, `id:num5Button`, `Calculator > name:Equals`
WINDOWS = _merge(_all("selector", 0, "locator", """
    Click
    Double Click
    Right Click
    Middle Click
    Select
    Is Selected
    Get Checkbox State
    Send Keys
    Get Text
    Get Value
    Set Value
    Screenshot
    Set Focus
    Set Anchor
    Print Tree
    Get Attribute
    List Attributes
    Get Element
    Get Elements
    Control Window
    Control Child Window
    Foreground Window
    Minimize Window
    Maximize Window
    Restore Window
    Close Window
"""), _all("selector", 0, "source_element", """
    Drag And Drop
"""), _all("selector", 1, "target_element", """
    Drag And Drop
"""), _all("application", 0, "text", """
    Windows Search
    Windows Run
"""))

# RPA.Desktop: locators such as `alias:Submit`, `image:button.png`, `ocr:"Sign in"`
DESKTOP = _merge(_all("selector", 0, "locator", """
    Click
    Click With Offset
    Copy To Clipboard
    Find Element
    Find Elements
    Highlight Elements
    Move Mouse
    Paste From Clipboard
    Read Text
    Type Text Into
    Wait For Element
"""), _all("selector", 1, "locator", """
    Take Screenshot
"""), _all("application", 0, "name_or_path", """
    Open Application
"""), _all("file", 0, "path", """
    Open File
"""))

VAULT = _all("credential", 0, "secret_name", """
    Get Secret
""")
STORAGE = _all("asset", 0, "name", """
    Get Text Asset
    Get JSON Asset
    Get File Asset
    Get Bytes Asset
""")
RPA_HTTP = _all("url", 0, "url", """
    Download
    HTTP Get
""")
REQUESTS = _merge(_all("url", 1, "url", """
    Create Session
"""), _all("url", 0, "url", """
    GET
    POST
    PUT
    PATCH
    DELETE
    HEAD
    OPTIONS
"""))
EXCEL_FILES = _all("file", 0, "path", """
    Open Workbook
""")
EXCEL_APPLICATION = _all("file", 0, "filename", """
    Open Workbook
""")
TABLES = _all("file", 0, "path", """
    Read Table From CSV
""")
OPERATING_SYSTEM = _all("file", 0, "path", """
    Get File
    Get Binary File
    Grep File
""")
FILE_SYSTEM = _all("file", 0, "path", """
    Read File
    Read Binary File
""")
PDF = _all("file", 0, "source_path", """
    Open Pdf
    Get Text From Pdf
""")
IMAP_SMTP = _all("mailbox", 0, "account", """
    Authorize
    Authorize Imap
    Authorize Smtp
""")
EXCHANGE = _all("mailbox", 0, "username", """
    Authorize
""")
PROCESS = _all("application", 0, "command", """
    Start Process
    Run Process
""")
BUILTIN = _merge(_all("library", 0, "name", """
    Import Library
"""), _all("workflow", 0, "path", """
    Import Resource
"""))

FAMILIES: dict[str, Table] = {
    "builtin": BUILTIN, "selenium": SELENIUM, "rpa-selenium": RPA_SELENIUM, "browser": BROWSER,
    "windows": WINDOWS, "desktop": DESKTOP, "vault": VAULT, "storage": STORAGE, "rpa-http": RPA_HTTP,
    "requests": REQUESTS, "excel-files": EXCEL_FILES, "excel-application": EXCEL_APPLICATION,
    "tables": TABLES, "operating-system": OPERATING_SYSTEM, "file-system": FILE_SYSTEM, "pdf": PDF,
    "imap-smtp": IMAP_SMTP, "exchange": EXCHANGE, "process": PROCESS,
}

# library name as imported -> its families (RPA.HTTP is RequestsLibrary with keywords of its own)
LIBRARIES: dict[str, tuple[str, ...]] = {normalize(name): families for name, families in (
    ("BuiltIn", ("builtin",)),
    ("SeleniumLibrary", ("selenium",)),
    ("Selenium2Library", ("selenium",)),
    ("RPA.Browser.Selenium", ("rpa-selenium", "selenium")),
    ("RPA.Browser", ("rpa-selenium", "selenium")),
    ("Browser", ("browser",)),
    ("RPA.Browser.Playwright", ("browser",)),
    ("RPA.Windows", ("windows",)),
    ("RPA.Desktop", ("desktop",)),
    ("RPA.Robocorp.Vault", ("vault",)),
    ("RPA.Robocloud.Secrets", ("vault",)),
    ("RPA.Robocorp.Storage", ("storage",)),
    ("RPA.HTTP", ("rpa-http", "requests")),
    ("RequestsLibrary", ("requests",)),
    ("RPA.Excel.Files", ("excel-files",)),
    ("RPA.Excel.Application", ("excel-application",)),
    ("RPA.Tables", ("tables",)),
    ("OperatingSystem", ("operating-system",)),
    ("RPA.FileSystem", ("file-system",)),
    ("RPA.PDF", ("pdf",)),
    ("RPA.Email.ImapSmtp", ("imap-smtp",)),
    ("RPA.Email.Exchange", ("exchange",)),
    ("Process", ("process",)),
)}

# BuiltIn keywords that run another keyword: the position of its name among their arguments.
# `Run Keywords` and `Run Keyword If` take several and are split apart by the extractor.
RUNNERS: dict[str, int] = {normalize(name): position for name, position in (
    ("Run Keyword", 0),
    ("Run Keyword And Continue On Failure", 0),
    ("Run Keyword And Expect Error", 1),
    ("Run Keyword And Ignore Error", 0),
    ("Run Keyword And Return", 0),
    ("Run Keyword And Return If", 1),
    ("Run Keyword And Return Status", 0),
    ("Run Keyword And Warn On Failure", 0),
    ("Run Keyword If All Tests Passed", 0),
    ("Run Keyword If Any Tests Failed", 0),
    ("Run Keyword If Test Failed", 0),
    ("Run Keyword If Test Passed", 0),
    ("Run Keyword If Timeout Occurred", 0),
    ("Run Keyword Unless", 1),
    ("Repeat Keyword", 1),
    ("Wait Until Keyword Succeeds", 2),
)}
RUN_KEYWORDS = normalize("Run Keywords")
RUN_KEYWORD_IF = normalize("Run Keyword If")
SET_VARIABLE = normalize("Set Variable")

# `strategy=value` locators (`css=#id`, `xpath=//a`) look like named arguments: these words
# are locator strategies of SeleniumLibrary and Browser, never a locator's parameter name
STRATEGIES = frozenset({"id", "name", "identifier", "class", "tag", "xpath", "css", "dom", "link", "sizzle",
                        "jquery", "default", "element", "data", "text", "nth", "internal", "aria", "role"})
