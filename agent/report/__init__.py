"""`botwatch report`: the estate reliability report.

gather (journal + estate file) or gather_prometheus (Prometheus' HTTP API, prom.py) -> a plain
data model (model.py) -> renderers (html, md, csv).
"""

from .gather import gather
from .model import Report

FORMATS = ("html", "md", "csv")


def render(report: Report, fmt: str) -> str:
    if fmt == "html":
        from .html import render_html as r
    elif fmt == "md":
        from .md import render_md as r
    elif fmt == "csv":
        from .csv import render_csv as r
    else:
        raise ValueError(f"unknown report format {fmt!r}")
    return r(report)


__all__ = ["FORMATS", "Report", "gather", "render"]
