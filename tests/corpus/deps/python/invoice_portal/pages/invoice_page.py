"""The invoice search screen."""

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.relative_locator import locate_with
from selenium.webdriver.support.ui import WebDriverWait

import locators
from pages.base_page import BasePage


class InvoicePage(BasePage):
    def search(self, number):
        self.type_into(locators.InvoiceLocators.SEARCH, number)
        WebDriverWait(self.driver, self.TIMEOUT).until(
            EC.presence_of_all_elements_located(locators.InvoiceLocators.RESULTS))
        return self.driver.find_elements(*locators.InvoiceLocators.RESULTS)

    def amount(self):
        field = self.driver.find_element(locate_with(By.TAG_NAME, "input").to_right_of(locators.AMOUNT_NEAR))
        return field.get_attribute("value")

    def open_invoice(self, number):
        self.driver.find_element(By.XPATH, f"//td[.='{number}']/..").click()

    def export(self):
        self.click(locators.InvoiceLocators.EXPORT)
        self.click(locators.InvoiceLocators.Dialog.CONFIRM)
