"""Confirms the day's purchase orders on the supplier portal and uploads the invoices."""

import os
import sys
from pathlib import Path

import botwatch
from playwright.sync_api import sync_playwright

from pages import LoginScreen, OrdersScreen

PORTAL = "https://suppliers.example.org"
INVOICES = Path(os.environ.get("INVOICE_DIR", "invoices"))


def main() -> int:
    user = os.environ["SUPPLIER_USER"]
    secret = os.environ["SUPPLIER_SECRET"]
    with botwatch.run("supplier-sync"), sync_playwright() as p:
        browser = p.chromium.launch()
        context = browser.new_context(base_url=PORTAL, locale="en-GB")
        page = context.new_page()
        LoginScreen(page).sign_in(user, secret)
        orders = OrdersScreen(page)
        botwatch.snapshot("orders", page.content())
        confirmed = orders.confirm_all()
        for invoice in sorted(INVOICES.glob("*.pdf")):
            orders.open_order(invoice.stem)
            orders.upload_invoice(str(invoice))
            page.go_back()
        page.fill("#search", "pending")
        page.keyboard.press("Enter")
        page.click("text=Log out")
        page.wait_for_url(PORTAL + "/signin")
        page.goto(f"{PORTAL}/status")
        botwatch.ui_lookup("status", "css=.status-ok", found=page.is_visible(".status-ok"))
        browser.close()
    return 0 if confirmed else 1


if __name__ == "__main__":
    sys.exit(main())
