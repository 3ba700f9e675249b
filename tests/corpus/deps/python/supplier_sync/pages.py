"""The supplier portal's screens, as page objects."""

import re

from playwright.sync_api import Page, expect


class LoginScreen:
    PATH = "/signin"

    def __init__(self, page: Page) -> None:
        self.page = page
        self.user = page.get_by_label("E-mail address")
        self.password = page.get_by_label("Password", exact=True)
        self.submit = page.get_by_role("button", name="Sign in")

    def sign_in(self, user: str, password: str) -> None:
        self.page.goto(self.PATH)
        self.user.fill(user)
        self.password.fill(password)
        self.submit.click()
        expect(self.page).to_have_url(re.compile(r".*/orders"))


class OrdersScreen:
    def __init__(self, page: Page) -> None:
        self.page = page
        self.table = page.locator("table#orders")
        self.rows = self.table.locator("tbody tr")

    def open_order(self, number: str) -> None:
        self.rows.filter(has_text=number).get_by_role("link").click()

    def confirm_all(self) -> int:
        pending = self.page.locator("tbody tr", has_text="Pending")
        count = pending.count()
        for index in range(count):
            pending.nth(index).get_by_role("checkbox").check()
        self.page.get_by_role("button", name=re.compile("confirm", re.IGNORECASE)).click()
        self.page.wait_for_selector("text=Orders confirmed")
        return count

    def upload_invoice(self, path: str) -> None:
        frame = self.page.frame_locator("iframe[title='Upload']")
        frame.get_by_test_id("file-input").set_input_files(path)
        frame.get_by_role("button", name="Upload").first.click()
        expect(frame.locator(".upload-status")).to_have_text("Done")
