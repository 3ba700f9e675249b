"""A small invoice portal in four versions, served on 127.0.0.1: the application whose screens drift.

    /v1/login.html, /v1/invoice.html    the baseline
    /v2/...    cosmetic changes only: other colours, a news banner, today's date in the header
    /v3/...    a redesign: the actions moved into a side menu; the submit button there has a new
               id (`submit-invoice`, was `btnSubmit`), its text is unchanged
    /v4/...    the side menu without the submit button: the element is gone

Every version has the same fixed layout for the header (date) and the news slot under it, the
regions a screenshot check masks (MASK: the bots' browser window is 1280 pixels wide). The login
screen is the same in every version but for the colours, the banner and the date; v3 and v4
keep the looks of v2.
"""

from __future__ import annotations

from datetime import date
from http.server import BaseHTTPRequestHandler

from conftest import LocalHTTPServer

VERSIONS = ("v1", "v2", "v3", "v4")
MASK = [[0, 0, 1280, 100]]  # screenshot pixels: the header (title, date) and the news slot under it
BASELINE_DAY = date(2024, 1, 8)

_COLOURS = {  # header, accent (buttons), page background
    "v1": ("#1f4e79", "#2e7d32", "#ffffff"),
    "v2": ("#24598a", "#33873a", "#fcfcfc"),
}


def _page(version: str, title: str, body: str) -> str:
    header, accent, background = _COLOURS["v1" if version == "v1" else "v2"]  # v3 and v4 keep v2's looks
    day = BASELINE_DAY if version == "v1" else date.today()
    news = ('<div class="banner">New: e-invoicing for all suppliers from next month. '
            '<a href="#news">Read more</a></div>') if version != "v1" else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - Invoice portal</title>
<style>
  * {{ box-sizing: border-box; }}
  body {{ margin: 0; font: 16px/1.4 sans-serif; color: #222; background: {background}; }}
  header {{ height: 60px; padding: 0 24px; display: flex; align-items: center; justify-content: space-between;
           background: {header}; color: #fff; }}
  header h1 {{ margin: 0; font-size: 22px; }}
  #news {{ height: 40px; }}
  .banner {{ height: 40px; padding: 9px 24px; background: #fff3c4; color: #5c4400; }}
  .layout {{ display: flex; }}
  .side {{ width: 240px; min-height: 700px; padding: 16px; background: #eef1f5; }}
  .side h2 {{ margin: 0 0 12px; font-size: 16px; }}
  .side button {{ display: block; width: 100%; margin: 0 0 8px; padding: 10px; text-align: left; }}
  main {{ padding: 24px; flex: 1; }}
  label {{ display: block; margin: 0 0 16px; }}
  input {{ display: block; width: 360px; padding: 8px; font-size: 16px; }}
  #actions {{ margin: 24px 0; }}
  #actions button {{ padding: 12px 24px; font-size: 16px; margin-right: 12px; }}
  .primary {{ background: {accent}; color: #fff; border: 0; }}
  table {{ border-collapse: collapse; margin-top: 24px; }}
  td, th {{ border: 1px solid #ccd; padding: 6px 12px; text-align: left; }}
</style></head>
<body>
<header><h1>Invoice portal</h1><span id="today">{day:%A %d %B %Y}</span></header>
<div id="news">{news}</div>
{body}
<script>
  function submitInvoice() {{
    document.getElementById('result').textContent = 'Invoice ' + document.getElementById('number').value + ' submitted';
  }}
</script>
</body></html>
"""


def login(version: str) -> str:
    return _page(version, "Sign in", """<main>
  <form id="login-form" onsubmit="location.href = 'invoice.html'; return false;">
    <label>User <input id="user" name="user" autocomplete="off"></label>
    <label>Password <input id="password" name="password" type="password"></label>
    <button id="btnLogin" class="primary" type="submit">Sign in</button>
  </form>
</main>""")


_FORM = """
  <h2>New invoice</h2>
  <form id="invoice-form" onsubmit="return false;">
    <label>Supplier <input id="supplier" name="supplier"></label>
    <label>Invoice number <input id="number" name="number"></label>
    <label>Amount <input id="amount" name="amount"></label>
    <div id="actions">{actions}</div>
  </form>
  <p id="result" role="status"></p>
  <table id="recent">
    <tr><th>Number</th><th>Supplier</th><th>Amount</th><th>Due</th><th>Status</th></tr>
{rows}
  </table>"""
_SUPPLIERS = ("Acme Paper", "Northwind Freight", "Contoso Cleaning", "Fabrikam Office", "Tailspin Travel",
              "Wide World Importers", "Litware Consulting", "Adventure Works")
_ROWS = "\n".join(f"    <tr><td>INV-{1001 + i}</td><td>{name}</td><td>{(i + 1) * 137.5:,.2f}</td>"
                  f"<td>2024-02-{i + 10:02d}</td><td>{'Paid' if i % 3 else 'Open'}</td></tr>"
                  for i, name in enumerate(_SUPPLIERS))
_SUBMIT_V1 = '<button type="button" id="btnSubmit" class="primary" onclick="submitInvoice()">Submit invoice</button>'
_SUBMIT_V3 = '<button type="button" id="submit-invoice" class="menu-item" onclick="submitInvoice()">Submit invoice</button>'


def invoice(version: str) -> str:
    save = '<button type="button" id="btnSave">Save draft</button>'
    if version in ("v1", "v2"):
        return _page(version, "Invoice", "<main>" + _FORM.format(actions=save + _SUBMIT_V1, rows=_ROWS) + "\n</main>")
    menu = ['<button type="button" id="export-pdf" class="menu-item">Export as PDF</button>',
            '<button type="button" id="history" class="menu-item">History</button>']
    if version == "v3":
        menu.insert(0, _SUBMIT_V3)
    side = '<nav class="side" id="menu"><h2>Actions</h2>' + "".join(menu) + "</nav>"
    return _page(version, "Invoice", f'<div class="layout">{side}<main>' + _FORM.format(actions=save, rows=_ROWS)
                 + "\n</main></div>")


PAGES = {"login.html": login, "invoice.html": invoice}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        parts = self.path.split("?")[0].strip("/").split("/")
        if len(parts) == 2 and parts[0] in VERSIONS and parts[1] in PAGES:
            body = PAGES[parts[1]](parts[0]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
        else:
            body = b"not found"
            self.send_response(404)
            self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # quiet
        pass


class DriftApp:
    """The portal on a free 127.0.0.1 port, in a thread of the test process."""

    def __init__(self):
        self._http = LocalHTTPServer(_Handler)
        self.url = self._http.url

    def start(self) -> "DriftApp":
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()

    def version(self, version: str) -> str:
        return f"{self.url}/{version}"
