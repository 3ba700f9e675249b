"""The UI drift engine: page fingerprints, declared selectors, screenshots, accessibility trees."""

from __future__ import annotations

import io
import json
import random
import textwrap

import pytest

from botwatch.config.estate import ConfigError, parse_estate_text
from botwatch.core.events import RunFinished, RunStarted, UiLookup, UiSnapshot
from botwatch.state.journal import UI_FLIP, Flip, Journal
from botwatch.state.runtime import EstateState
from botwatch.ui import SnapshotError
from botwatch.ui.probe import BaselineExists, DriftProbe, NoBaseline, kind_for, read_snapshot, settings_for
from botwatch.ui.selectors import to_xpath

ESTATE = textwrap.dedent("""\
    bots:
      - name: invoices
        ui:
          screens:
            invoice:
              selectors: {submit: "#btnSubmit", amount: "input[name=amount]"}
            portal:
              mask: [[1500, 0, 1920, 120]]
            tree:
              selectors: {send: 'button[name="Submit"]', amount: "//textbox[@name='Amount']"}
      - name: plain
    """)


@pytest.fixture
def probe():
    return DriftProbe(parse_estate_text(ESTATE), None)


def page(*, banner="", date="2025-06-01", submit='<button id="btnSubmit" class="btn primary">Submit</button>',
         amount='<input name="amount" type="text">', extra="", rows=40) -> bytes:
    items = "".join(f"<li class='item'>Invoice {i} <a href='/invoice/{i}'>open</a></li>" for i in range(rows))
    return textwrap.dedent(f"""\
        <!doctype html><html><head><title>Invoices</title><style>.x {{color: red}}</style>
        <script>var build = "{date}";</script></head><body>{banner}
        <div id="app"><header><h1>Invoices</h1><span class="date">{date}</span></header>
        <form id="invoice"><label for="amount">Amount</label>{amount}{extra}
        <div class="actions">{submit}</div></form><ul>{items}</ul></div></body></html>""").encode()


def check(probe, data, screen="invoice", kind="html", bot="invoices"):
    return probe.check(bot, screen, kind, data)


# -- pages ------------------------------------------------------------------------------------

def test_the_first_snapshot_becomes_the_baseline_with_score_zero(probe):
    r = check(probe, page())
    assert r.baseline and r.score == 0 and not r.warning
    assert r.selectors == {"submit": 1, "amount": 1}
    assert r.to_json()["baseline"] is True and r.to_json()["drift_warning"] == 0.3


def test_an_unchanged_page_does_not_drift(probe):
    check(probe, page())
    r = check(probe, page())
    assert (r.score, r.changes, r.baseline) == (0.0, [], False)


@pytest.mark.parametrize("what,kwargs", [
    ("a new banner", {"banner": '<div class="banner"><p>Maintenance tonight <b>22:00</b></p><a href="#">x</a></div>'}),
    ("today's date", {"date": "2025-06-30"}),
    ("the button's colour", {"submit": '<button id="btnSubmit" class="btn success">Submit</button>'}),
    ("more invoices in the list", {"rows": 43}),
])
def test_cosmetic_changes_stay_below_the_warning(probe, what, kwargs):
    check(probe, page())
    r = check(probe, page(**kwargs))
    assert r.score < 0.3, (what, r.score, r.changes)
    assert not r.warning and r.selectors == {"submit": 1, "amount": 1}


def test_a_renamed_target_goes_high_and_its_selector_matches_nothing(probe):
    check(probe, page())
    r = check(probe, page(submit='<button id="btnSend" class="btn primary">Submit</button>'))
    assert r.score >= 0.9 and r.warning
    assert r.selectors == {"submit": 0, "amount": 1}
    assert r.changes[0] == "selector submit (#btnSubmit) matches 0 elements (baseline: 1)"
    assert any("id 'btnSubmit' -> 'btnSend'" in c for c in r.changes)


def test_a_moved_target_goes_high_even_while_its_selector_still_matches(probe):
    check(probe, page())
    r = check(probe, page(submit="", extra='<p><button id="btnSubmit" class="btn primary">Submit</button></p>'))
    assert r.selectors["submit"] == 1
    assert 0.5 <= r.score < 0.9 and r.warning
    assert any("moved" in c and "btnSubmit" in c for c in r.changes)


def test_a_removed_target_scores_one(probe):
    check(probe, page())
    r = check(probe, page(submit=""))
    assert r.score == 1.0 and r.selectors["submit"] == 0
    assert any("removed" in c for c in r.changes)


def test_a_selector_that_now_matches_several_elements_is_an_early_warning(probe):
    check(probe, page())
    r = check(probe, page(extra='<input name="amount" type="hidden">'))
    assert r.selectors["amount"] == 2 and r.warning
    assert "selector amount (input[name=amount]) matches 2 elements (baseline: 1)" in r.changes


def test_a_changed_label_on_a_target_is_a_warning(probe):
    check(probe, page())
    r = check(probe, page(submit='<button id="btnSubmit" class="btn primary">Send</button>'))
    assert 0.3 <= r.score < 0.5 and r.warning
    assert any("text 'Submit' -> 'Send'" in c for c in r.changes)


def test_without_declared_selectors_the_score_is_the_share_of_the_page_that_changed(probe):
    check(probe, page(), bot="plain")
    small = check(probe, page(banner='<div class="banner"><p>Notice</p></div>'), bot="plain")
    redesign = check(probe, b"<html><body>" + b"".join(b"<section><h2>%d</h2><p class='new'>text</p></section>" % i
                                                       for i in range(60)) + b"</body></html>", bot="plain")
    assert small.score < 0.05
    assert redesign.score > 0.9 and redesign.warning
    assert small.selectors == redesign.selectors == {}


def test_a_selector_declared_after_the_baseline_is_looked_up_in_the_stored_page():
    early = parse_estate_text("bots:\n  - name: b\n")
    probe = DriftProbe(early, None)
    probe.check("b", "s", "html", page())
    later = DriftProbe(parse_estate_text("bots:\n  - name: b\n    ui: {screens: {s: {selectors: {go: '#btnSubmit'}}}}\n"),
                       None)
    later._memory = probe._memory  # the same stored baselines
    r = later.check("b", "s", "html", page(submit='<button id="btnSubmit2">Submit</button>'))
    assert r.selectors == {"go": 0} and r.score >= 0.9
    assert "selector go (#btnSubmit) matches 0 elements (baseline: 1)" in r.changes


@pytest.mark.parametrize("selector,count", [
    ("#btnSubmit", 1), ("css:button.primary", 1), ("css=form#invoice input", 1), ("id:btnSubmit", 1),
    ("id=btnSubmit", 1), ("name:amount", 1), ("name=amount", 1), ("//button[@id='btnSubmit']", 1),
    ("xpath://li", 40), ("xpath=//li[@class='item']/a", 40), ("(//li)[1]", 1), ("div.missing", 0),
])
def test_selectors_are_css_by_default_xpath_from_a_slash_and_accept_selenium_prefixes(selector, count):
    from botwatch.ui.dom import parse_html
    from botwatch.ui.selectors import compile_selectors

    root = parse_html(page())
    assert compile_selectors({"s": selector})["s"].count(root) == count


@pytest.mark.parametrize("bad,message", [
    ("#btn[[", "invalid CSS selector"), ("//div[@", "invalid XPath"), ("xpath:", "nothing after it"),
    ("", "non-empty"),
])
def test_a_bad_selector_is_refused_with_a_readable_message(bad, message):
    with pytest.raises(ValueError, match=message):
        to_xpath(bad)


def test_bad_selectors_and_masks_are_estate_errors_at_their_line():
    text = textwrap.dedent("""\
        bots:
          - name: b
            ui:
              drift_warning: 1.5
              screens:
                s:
                  selectors:
                    ok: "#a"
                    broken: "#btn[["
                  mask: [[10, 0, 5, 40]]
        """)
    with pytest.raises(ConfigError) as exc:
        parse_estate_text(text, "estate.yaml")
    problems = exc.value.problems
    assert problems[0].startswith("estate.yaml:4: bots[0].ui.drift_warning:")
    assert any(p.startswith("estate.yaml:9: bots[0].ui.screens.s.selectors.broken: invalid CSS selector") for p in problems)
    assert any(p.startswith("estate.yaml:10: bots[0].ui.screens.s.mask[0]: mask rectangle [10, 0, 5, 40]")
               for p in problems)


# -- screenshots ------------------------------------------------------------------------------

def screenshot(*, clock="07:59", shift=0, button=(40, 110, 200), size=(1920, 1080)) -> bytes:
    from PIL import Image, ImageDraw

    rnd = random.Random(3)
    im = Image.new("RGB", size, (245, 246, 248))
    d = ImageDraw.Draw(im)
    # a big clock and counter in the top right corner (the volatile area)
    d.rectangle([1500, 0, 1920, 120], fill=(30, 30, 60))
    for i, ch in enumerate(clock):
        if ch.isdigit():
            d.rectangle([1520 + 90 * i, 20, 1520 + 90 * i + 20 + 6 * int(ch), 100], fill=(250, 250, 250))
    for _ in range(80):
        x, y = rnd.randint(0, size[0] - 320), rnd.randint(140, size[1] - 60) + shift
        d.rectangle([x, y, x + rnd.randint(60, 300), y + rnd.randint(12, 50)],
                    fill=tuple(rnd.randint(0, 200) for _ in range(3)))
    d.rectangle([800, 900 + shift, 1000, 950 + shift], fill=button)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def test_a_masked_clock_does_not_count_but_the_same_change_unmasked_does(probe):
    base = screenshot()
    check(probe, base, screen="portal", kind="png")
    masked = check(probe, screenshot(clock="18:42"), screen="portal", kind="png")
    assert masked.score == 0.0
    probe.check("plain", "portal", "png", base)
    unmasked = probe.check("plain", "portal", "png", screenshot(clock="18:42"))
    assert 0 < unmasked.score < 0.3  # a corner of the screen
    assert any("region [" in c for c in unmasked.changes)


def test_a_button_in_another_colour_stays_low_and_a_shifted_layout_goes_high(probe):
    check(probe, screenshot(), screen="portal", kind="png")
    colour = check(probe, screenshot(button=(200, 60, 60)), screen="portal", kind="png")
    shifted = check(probe, screenshot(shift=60), screen="portal", kind="png")
    assert colour.score < 0.1
    assert shifted.score >= 0.5 and shifted.warning
    assert colour.selectors == shifted.selectors == {}


def test_a_screenshot_of_another_size_is_compared_and_said_so(probe):
    check(probe, screenshot(), screen="portal", kind="png")
    r = check(probe, screenshot(size=(1280, 720)), screen="portal", kind="png")
    assert r.changes[0] == "screenshot size changed: 1920x1080 -> 1280x720"


# -- accessibility trees ----------------------------------------------------------------------

def playwright_tree(name="Submit", amount="Amount", extra=()):
    return {"role": "WebArea", "name": "Invoices", "children": [
        {"role": "heading", "name": "Invoices", "level": 1},
        {"role": "textbox", "name": amount, "value": "120.00"},
        {"role": "button", "name": name}, *extra]}


def chrome_nodes(name="Submit"):
    return {"nodes": [
        {"nodeId": "1", "ignored": False, "role": {"type": "internalRole", "value": "WebArea"},
         "name": {"type": "computedString", "value": "Invoices"}, "childIds": ["2"]},
        {"nodeId": "2", "ignored": True, "role": {"type": "role", "value": "generic"}, "childIds": ["3", "4", "5"],
         "parentId": "1"},
        {"nodeId": "3", "ignored": False, "role": {"type": "role", "value": "heading"},
         "name": {"type": "computedString", "value": "Invoices"}, "parentId": "2",
         "properties": [{"name": "level", "value": {"type": "integer", "value": 1}}]},
        {"nodeId": "4", "ignored": False, "role": {"type": "role", "value": "textbox"},
         "name": {"type": "computedString", "value": "Amount"}, "value": {"type": "string", "value": "120.00"},
         "parentId": "2"},
        {"nodeId": "5", "ignored": False, "role": {"type": "role", "value": "button"},
         "name": {"type": "computedString", "value": name}, "parentId": "2"},
    ]}


def test_playwright_and_chrome_devtools_trees_of_the_same_page_do_not_drift_apart(probe):
    first = check(probe, json.dumps(playwright_tree()).encode(), screen="tree", kind="a11y")
    assert first.baseline and first.selectors == {"send": 1, "amount": 1}
    r = check(probe, json.dumps(chrome_nodes()).encode(), screen="tree", kind="a11y")
    assert (r.score, r.selectors) == (0.0, {"send": 1, "amount": 1})


def test_a_target_renamed_in_the_accessibility_tree_goes_high(probe):
    check(probe, json.dumps(playwright_tree()).encode(), screen="tree", kind="a11y")
    r = check(probe, json.dumps(chrome_nodes(name="Send")).encode(), screen="tree", kind="a11y")
    assert r.selectors["send"] == 0 and r.score >= 0.9
    assert any("name 'Submit' -> 'Send'" in c for c in r.changes)


def test_a_new_element_in_the_accessibility_tree_is_churn(probe):
    check(probe, json.dumps(playwright_tree()).encode(), screen="tree", kind="a11y")
    r = check(probe, json.dumps(playwright_tree(extra=[{"role": "alert", "name": "Saved"}])).encode(), screen="tree",
              kind="a11y")
    assert 0 < r.score < 0.3


# -- bad input and kinds ----------------------------------------------------------------------

@pytest.mark.parametrize("kind,data,message", [
    ("html", b"", "empty snapshot"),
    ("html", b"\x89PNG\r\n\x1a\nrest", "PNG image, not HTML"),
    ("html", b'{"role": "button"}', "looks like JSON"),
    ("html", b"just some words", "no tag found"),
    ("a11y", b"{not json", "does not parse"),
    ("a11y", b'{"title": "no tree here"}', "not an accessibility tree"),
    ("a11y", b'{"role": "WebArea", "children": "nope"}', "must be a list"),
    ("a11y", b'[{"nodeId": "1", "childIds": ["2"]}, {"nodeId": "2", "childIds": ["1"]}]', "no root node"),
    ("png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR truncated", "cannot be decoded"),
    ("png", b"<html><body>x</body></html>", "looks like HTML or JSON"),
    ("png", b"GIF-ish garbage", "not an image"),
])
def test_a_snapshot_that_cannot_be_read_is_refused_with_a_clear_message(kind, data, message):
    settings = settings_for(None, "s")
    with pytest.raises(SnapshotError, match=message):
        read_snapshot(kind, data, settings)


def test_the_kind_comes_from_the_argument_the_extension_the_content_type_or_the_content():
    assert kind_for(explicit="png", content_type="text/html") == "png"
    assert kind_for(filename="x/2025-06-01T07-00.htm") == "html"
    assert kind_for(filename="a.json") == "a11y"
    assert kind_for(content_type="text/html; charset=utf-8") == "html"
    assert kind_for(content_type="application/json") == "a11y"
    assert kind_for(content_type="image/png") == "png"
    assert kind_for(content_type="application/octet-stream", data=b"\x89PNG...") == "png"
    assert kind_for(data=b"  <html>") == "html" and kind_for(data=b'{"role": 1}') == "a11y"
    with pytest.raises(SnapshotError, match="cannot tell the kind"):
        kind_for(content_type="application/octet-stream", data=b"???")
    with pytest.raises(SnapshotError, match="unknown snapshot kind"):
        kind_for(explicit="gif")


def test_check_without_a_baseline_raises_when_it_may_not_take_one(probe):
    with pytest.raises(NoBaseline):
        probe.check("invoices", "invoice", "html", page(), bootstrap=False)


# -- baselines in the journal, flips and state ----------------------------------------------------

def test_accepting_a_baseline_is_a_ui_flip_the_state_machine_never_reads(tmp_path):
    estate = parse_estate_text(ESTATE)
    journal = Journal(tmp_path / "j.db")
    probe = DriftProbe(estate, journal, clock=lambda: 1_800_000_000.0)
    st = EstateState(estate, journal, clock=lambda: 1_800_000_000.0)
    st.apply([RunStarted("invoices", "r1", 1_799_999_000.0),
              RunFinished("invoices", "r1", 1_799_999_100.0, "success", started=1_799_999_000.0)])
    assert journal.last_flips()["invoices"].new_state == "up"
    probe.set_baseline("invoices", "invoice", "html", page(), replace=False, accept=False)
    with pytest.raises(BaselineExists):
        probe.set_baseline("invoices", "invoice", "html", page(), replace=False, accept=False)
    probe.set_baseline("invoices", "invoice", "html", page(banner="<p>new</p>"), replace=False, accept=True)
    flips = journal.flips("invoices")
    assert flips[-1] == Flip("invoices", 1_800_000_000.0, "steady", "accepted",
                             "ui baseline accepted: screen invoice (html)", kind=UI_FLIP)
    assert journal.last_flips()["invoices"].new_state == "up"  # the bot's state is untouched
    assert journal.flip_counts("accepted") == {}
    again = EstateState(estate, journal, clock=lambda: 1_800_000_000.0)
    assert again.bots["invoices"].recorded_state == "up"
    assert again.views()[0].state == "up"
    screen = again.bots["invoices"].ui["invoice"]
    assert screen.drift_score == 0.0 and screen.baseline_time == 1_800_000_000.0
    assert screen.declared_matches == {"amount": 1, "submit": 1}


def test_an_older_journal_gains_the_flip_kind_and_ui_tables_on_open(tmp_path):
    import sqlite3

    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE flips (id INTEGER PRIMARY KEY AUTOINCREMENT, bot TEXT NOT NULL, at REAL NOT NULL, "
                     "old_state TEXT NOT NULL, new_state TEXT NOT NULL, reason TEXT);"
                     "INSERT INTO flips (bot, at, old_state, new_state) VALUES ('b', 1, 'new', 'down');")
    db.commit()
    db.close()
    ro = Journal(path, readonly=True)  # read as it is, before any migration
    assert ro.last_flips()["b"].new_state == "down" and ro.ui_drift() == [] and ro.ui_baseline("b", "s", "html") is None
    ro.close()
    j = Journal(path)
    assert j.last_flips()["b"] == Flip("b", 1.0, "new", "down", None, kind="state")
    assert j.flip_counts("down") == {"b": 1}


def test_snapshot_screens_are_bounded_per_bot_like_look_ups_except_declared_ones():
    estate = parse_estate_text(ESTATE + "agent:\n  limits: {max_screens: 2}\n")
    st = EstateState(estate, None, clock=lambda: 100.0)
    events = [UiLookup("invoices", 1.0, f"screen-{i}", found=True) for i in range(2)]
    events += [UiSnapshot("invoices", 2.0, "screen-9", "html", 0.4, {}),
               UiSnapshot("invoices", 2.0, "invoice", "html", 0.7, {"submit": 0, "amount": 1}, baseline_time=1.0)]
    st.apply(events)
    ui = st.bots["invoices"].ui
    assert set(ui) == {"screen-0", "screen-1", "other", "invoice"}
    assert ui["other"].drift_score == 0.4 and st.bots["invoices"].ui_screens_overflowed == 1
    assert ui["invoice"].drift_score == 0.7 and ui["invoice"].declared_matches == {"submit": 0, "amount": 1}


def test_the_exported_score_is_the_highest_kind_and_selectors_come_from_the_html_snapshot():
    from prometheus_client import generate_latest

    from botwatch.exporters.prometheus import estate_registry
    from conftest import parse_metrics

    st = EstateState(parse_estate_text(ESTATE), None, clock=lambda: 100.0)
    st.apply([UiSnapshot("invoices", 10.0, "invoice", "html", 0.2, {"submit": 1, "amount": 1}, baseline_time=5.0),
              UiSnapshot("invoices", 11.0, "invoice", "png", 0.6, {}, baseline_time=3.0),
              UiSnapshot("invoices", 12.0, "invoice", "a11y", 0.1, {"submit": 0, "amount": 0}, baseline_time=8.0),
              UiSnapshot("invoices", 9.0, "invoice", "html", 0.9, {"submit": 5}, baseline_time=1.0)])  # older: ignored
    m = parse_metrics(generate_latest(estate_registry(st, clock=st.clock)).decode())
    assert m['botwatch_ui_drift_score{bot="invoices",screen="invoice"}'] == 0.6
    assert m['botwatch_ui_baseline_timestamp_seconds{bot="invoices",screen="invoice"}'] == 3.0
    assert m['botwatch_ui_declared_selector_matches{bot="invoices",screen="invoice",selector="submit"}'] == 1
    assert m['botwatch_ui_declared_selector_matches{bot="invoices",screen="invoice",selector="amount"}'] == 1


# -- failures ----------------------------------------------------------------------------------

def test_a_ui_drift_failure_names_the_screen_and_selector_of_its_last_failed_look_up():
    st = EstateState(parse_estate_text(ESTATE), None, clock=lambda: 100.0)
    st.apply([RunStarted("invoices", "r1", 1.0),
              UiLookup("invoices", 2.0, "invoice", found=False, run_id="r1", selector="#btnSubmit"),
              RunFinished("invoices", "r1", 3.0, "failure", started=1.0,
                          output_tail="SelectorNotFoundException: the element was not found")])
    v = st.views()[0]
    assert v.last_reason == "ui_drift" and v.last_ui_failure == ("invoice", "#btnSubmit")
    assert v.to_json()["last_failure_screen"] == "invoice"
    assert v.to_json()["last_failure_selector"] == "#btnSubmit"


def test_a_ui_drift_failure_quoting_a_declared_selector_is_put_on_its_screen(tmp_path):
    journal = Journal(tmp_path / "j.db")
    st = EstateState(parse_estate_text(ESTATE), journal, clock=lambda: 100.0)
    st.apply([RunFinished("invoices", "r2", 3.0, "failure", started=1.0,
                          output_tail="Element with locator 'css:input[name=amount]' not found.")])
    v = st.views()[0]
    assert (v.last_reason, v.last_ui_failure) == ("ui_drift", ("invoice", "input[name=amount]"))
    run = [r for r in journal.iter_runs() if r.run_id == "r2"][0]
    assert (run.screen, run.selector) == ("invoice", "input[name=amount]")
    st.apply([RunFinished("plain", "r3", 4.0, "failure", output_tail="Element with locator 'id:go' not found.")])
    assert st.bots["plain"].last_ui_failure == (None, "id:go")
