import pytest

from botwatch.core.classify import Classifier

C = Classifier()


def reason(output, **kw):
    return C.classify(exit_status=kw.pop("exit_status", 1), output=output, **kw).reason


@pytest.mark.parametrize("line,expected,kind", [
    ("UiPath.Core.Activities.SelectorNotFoundException: Cannot find the UI element corresponding to this selector",
     "ui_drift", "not_found"),
    ("Could not find the user-interface (UI) element for this action.", "ui_drift", "not_found"),
    ("UiPath.Core.NodeAmbiguousException: Multiple elements matched", "ui_drift", "ambiguous"),
    ("ApplicationNotFoundException: Could not find target application.", "ui_drift", "wrong_app"),
    ("Element with locator 'id:submit' not found.", "ui_drift", "not_found"),
    ("Element 'css:#total' did not appear in 5 seconds.", "ui_drift", "not_found"),
    ("Button with locator 'id:btnSubmit' not found.", "ui_drift", "not_found"),
    ("Text field with locator 'name:amount' not found.", "ui_drift", "not_found"),
    ("Page should have contained element 'id:invoice-form' but did not.", "ui_drift", "not_found"),
    ("Page should have contained link 'Invoices' but did not.", "ui_drift", "not_found"),
    ("Element 'id:btnSubmit' not visible after 5 seconds.", "ui_drift", "not_found"),
    ("Page should have contained text 'Total: 120.50' but did not.", "unknown", None),
    ("Element not found with locator 'name:OK'", "ui_drift", "not_found"),
    ("No matches found for: image:ok.png", "ui_drift", "not_found"),
    ("locator.click: Timeout 30000ms exceeded.", "ui_drift", "not_found"),
    ("Error: strict mode violation: locator('button') resolved to 3 elements", "ui_drift", "ambiguous"),
    ("Failed to click UI element", "ui_drift", "not_found"),
    ("Element with specified CSS selector not found.", "ui_drift", "not_found"),
    ("Window wasn't found", "ui_drift", "wrong_app"),
    ("selenium.common.exceptions.NoSuchElementException: Message: no such element", "ui_drift", "not_found"),
    ("Logon failed for user 'svc-bot'", "credentials", None),
    ("System.ComponentModel.Win32Exception (0x0000052E): The user name or password is incorrect", "credentials", None),
    # a UiPath robot that cannot log on to its machine (the HRESULT of the same Windows error)
    ("Could not start executor. Logon failure: unknown user name or bad password. (0x8007052E)", "credentials", None),
    ("Could not find an asset with this name.", "credentials", None),
    ("Get Credential: HTTP 401 Unauthorized", "credentials", None),
    ("Your password expired yesterday", "credentials", None),
    ("UiPath.Core.BusinessRuleException: Invoice amount above limit", "business", None),
    ("robocorp BusinessException: customer unknown", "business", None),
    ("Blue Prism: Business Exception - duplicate case", "business", None),
    ("pydantic_core._pydantic_core.ValidationError: 1 validation error for Invoice", "data", None),
    ("Could not parse input file orders.csv", "data", None),
])
def test_starter_patterns_give_the_design_reasons(line, expected, kind):
    got = C.classify(exit_status=1, output=f"step 1 ok\n{line}\nbye\n")
    assert (got.reason, got.kind) == (expected, kind)


def test_a_traceback_without_a_known_pattern_is_a_crash():
    out = 'Traceback (most recent call last):\n  File "bot.py", line 3\nZeroDivisionError: division by zero\n'
    assert reason(out) == "crash"


def test_the_earliest_match_is_the_root_cause():
    out = "Logon failed for user 'svc'\nSelectorNotFoundException: Cannot find the UI element corresponding to this selector\n"
    assert reason(out) == "credentials"


def test_repeated_system_exceptions_with_ui_errors_are_drift():
    out = ("ValidationError in row 3\n"
           "SelectorNotFoundException: Cannot find the UI element corresponding to this selector\n"
           "The maximum number of consecutive system exceptions was reached\n")
    assert reason(out) == "ui_drift"


def test_signals_timeouts_and_unknown_output():
    assert reason("", signal=9) == "killed"
    assert reason("", signal=15) == "killed"
    assert reason("", signal=11) == "crash"
    assert reason("anything", timed_out=True, signal=15) == "timeout"
    assert reason("it just did not work") == "unknown"


def test_estate_patterns_are_data_and_win_over_the_defaults():
    c = Classifier([{"reason": "business", "contains": "SelectorNotFoundException"}])
    assert c.classify(exit_status=1, output="SelectorNotFoundException").reason == "business"
    c = Classifier([{"reason": "data", "regex": r"row \d+ is empty", "ignore_case": True}])
    assert c.classify(exit_status=1, output="ROW 7 IS EMPTY").reason == "data"


def _searched_by_every_regex(classifier, output):
    """What match() finds when every pattern's regex searches the whole text (no shortcut)."""
    hits = [(m.start(), i, p) for i, p in enumerate(classifier.patterns) if (m := p.regex.search(output))]
    return min(hits, key=lambda h: h[:2])[2] if hits else None


def test_the_substring_shortcut_never_changes_what_a_text_is_classified_as():
    from pathlib import Path

    corpus = Path(__file__).parent / "corpus" / "uipath"
    texts = [line for f in sorted(corpus.glob("*.log")) for line in f.read_text("utf-8", "replace").splitlines()]
    texts += ["Element with locator 'id:x' not found.", "INVALID input file format", "Could Not Parse the row",
              "asset 'ERP' answered 403", "LOGON FAILED FOR USER 'svc'", "Password Expired for svc"]
    assert any(p.literal and p.regex.pattern != p.literal for p in C.patterns), "regexes have required texts"
    for text in texts:
        expected = _searched_by_every_regex(C, text)
        found = C.match(text)
        assert (found and found.reason) == (expected and expected.reason), text
