"""Smoke checks run by pytest with the Playwright plugin: `page` is its fixture."""


def check_home(page):
    page.goto("http://intranet.example.local/timesheets")
    page.get_by_placeholder("Search people").fill("Mary")
    page.click("button#search")
    assert page.is_visible(".result-card")


def check_help(page, topic):
    page.goto("http://intranet.example.local/help/" + topic)
    page.click(topic)
