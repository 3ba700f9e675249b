"""Downloads the day's invoices from the portal and archives the paid ones."""

import sys

import botwatch
from botwatch.integrations.selenium import find, snapshot
from selenium import webdriver
from selenium.webdriver.common.by import By

import config
from pages.invoice_page import InvoicePage
from pages.login_page import LoginPage


def make_driver():
    options = webdriver.ChromeOptions()
    options.add_argument("--headless=new")
    return webdriver.Remote(command_executor=config.GRID_URL, options=options)


def archive_paid(driver):
    driver.get(config.BASE_URL + "/invoices?status=paid")
    snapshot(driver, "paid-invoices")
    for row in driver.find_elements(By.CSS_SELECTOR, "tr.invoice-row"):
        row.find_element(By.CSS_SELECTOR, "input[type=checkbox]").click()
    find(driver, "paid-invoices", "id:archive", (By.XPATH, "//button[normalize-space()='Archive']"),
         timeout=5).click()
    driver.find_element_by_id("confirm-archive").click()


def main(day):
    driver = make_driver()
    with botwatch.run("invoice-portal"):
        login = LoginPage(driver)
        login.open()
        if not login.log_in(config.PORTAL_USER, config.PORTAL_PASSWORD):
            botwatch.ui_lookup("login", "class=login-error", found=True)
            return 1
        invoices = InvoicePage(driver)
        rows = invoices.search(day)
        botwatch.ui_lookup(screen="invoices", selector="xpath=//table[@id='results']", found=bool(rows))
        invoices.export()
        archive_paid(driver)
        driver.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
