"""Checks that the timesheet site answers and that a week can be submitted (async)."""

import asyncio

from playwright.async_api import async_playwright, expect

SITE = "https://timesheets.example.net"
WEEK_PICKER = "select#week"


async def submit_week(page, week: str) -> None:
    await page.goto(SITE + "/my-week")
    await page.select_option(WEEK_PICKER, week)
    await page.check("#agree")
    await page.get_by_alt_text("Company logo").wait_for()
    await page.get_by_title("Total hours").hover()
    await page.dblclick("td.hours >> nth=0")
    await page.locator("form#week").get_by_role("button", name="Submit").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Week submitted")


async def main() -> None:
    async with async_playwright() as p:
        browser = await p.firefox.launch()
        page = await browser.new_page(base_url=SITE)
        await submit_week(page, "2026-W05")
        await browser.close()


if __name__ == "__main__":
    asyncio.run(main())
