# -*- coding: latin-1 -*-
"""Exports the timesheets of the month with the old portal (Selenium 3)."""

import os

import requests
from selenium import webdriver

API = "https://api.example.net/v1/exports"
API_KEY = os.environ.get("TIMESHEET_API_KEY")


def export_month(month):
    driver = webdriver.Firefox()
    driver.get("https://old-portal.example.net/login.php")
    driver.find_element_by_name("usuario").send_keys(os.environ["OLD_PORTAL_USER"])
    driver.find_element_by_name("clave").send_keys(os.environ["OLD_PORTAL_PASSWORD"])
    driver.find_element_by_css_selector("input.entrar").click()
    driver.find_element_by_link_text("Exportación").click()
    driver.find_elements_by_tag_name("table")
    driver.find_element_by_xpath("//select[@name=\x27mes\x27]/option[" + month + "]").click()
    requests.post(API, headers={"X-Key": API_KEY}, timeout=30)
    requests.get("https://api.example.net/v1/health", timeout=5)
    driver.quit()
