"""botwatch: runtime monitoring for bot estates (RPA bots and scheduled scripts).

The pipeline: sources -> events -> estate state (+ journal) -> exporters.
Keep this module free of imports: `botwatch run` imports it on its hot path. The Python SDK
(`botwatch.run`, `botwatch.bot`, `botwatch.fail`, `botwatch.items`, `botwatch.ui_lookup`,
`botwatch.snapshot`, `botwatch.step`) is loaded on first use.
"""

__version__ = "0.1.0"

_SDK = ("run", "bot", "fail", "items", "ui_lookup", "snapshot", "step")


def __getattr__(name):
    if name in _SDK:
        from .client import sdk

        value = getattr(sdk, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_SDK})
