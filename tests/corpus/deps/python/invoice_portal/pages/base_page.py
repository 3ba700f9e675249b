"""What every page of the portal can do."""

from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait


class BasePage:
    TIMEOUT = 15

    def __init__(self, driver):
        self.driver = driver

    def click(self, locator):
        WebDriverWait(self.driver, self.TIMEOUT).until(EC.element_to_be_clickable(locator)).click()

    def type_into(self, locator, text):
        field = self.driver.find_element(*locator)
        field.clear()
        field.send_keys(text)

    def is_shown(self, locator):
        return bool(self.driver.find_elements(*locator))
