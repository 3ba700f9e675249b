"""Settings of the invoice portal bot: where the portal is and who logs in."""

import os

import keyring

BASE_URL = "https://invoices.example.com"
GRID_URL = "http://selenium-hub.example.com:4444/wd/hub"

PORTAL_USER = os.environ.get("PORTAL_USER", "robot")
PORTAL_PASSWORD = os.environ["PORTAL_PASSWORD"]
SMTP_TOKEN = os.getenv("SMTP_TOKEN")
ARCHIVE_KEY = keyring.get_password("invoice-archive", PORTAL_USER)
