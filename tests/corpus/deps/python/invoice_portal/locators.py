"""Where each element of the portal is: one class per screen."""

from selenium.webdriver.common.by import By


class LoginLocators:
    USERNAME = (By.ID, "username")
    PASSWORD = (By.ID, "password")
    SUBMIT = (By.CSS_SELECTOR, "form#login button[type='submit']")
    ERROR = (By.CLASS_NAME, "login-error")


class InvoiceLocators:
    SEARCH = (By.NAME, "q")
    RESULTS = (By.XPATH, "//table[@id='results']//tr[td]")
    EXPORT = (By.LINK_TEXT, "Export to CSV")
    ARCHIVE = (By.PARTIAL_LINK_TEXT, "Archive")

    class Dialog:
        CONFIRM = (By.XPATH, "//div[@role='dialog']//button[.='OK']")


# fields found by their place next to a label (Selenium 4 relative locators)
AMOUNT_NEAR = {By.ID: "amount-label"}
