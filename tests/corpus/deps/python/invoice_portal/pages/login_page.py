"""The login screen."""

from config import BASE_URL
from locators import LoginLocators
from pages.base_page import BasePage


class LoginPage(BasePage):
    PATH = "/login"

    def open(self):
        self.driver.get(BASE_URL + self.PATH)

    def log_in(self, user, password):
        self.type_into(LoginLocators.USERNAME, user)
        self.type_into(LoginLocators.PASSWORD, password)
        self.click(LoginLocators.SUBMIT)
        return not self.is_shown(LoginLocators.ERROR)
