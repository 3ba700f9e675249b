"""UI drift: compare snapshots of a bot's screens with their baselines.

    selectors.py   declared selectors (CSS, XPath, SeleniumLibrary/Browser prefixes) -> XPath
    dom.py         HTML pages and accessibility trees -> element fingerprints (lxml)
    image.py       PNG screenshots -> perceptual hashes over a grid of tiles (Pillow)
    drift.py       the drift score in [0, 1] and what changed
    probe.py       baselines in the journal, a snapshot checked against its baseline: the part
                   the agent's API, its watched folder and `botwatch drift` share

The engine modules import lxml and Pillow (the drift extra); nothing here is imported on the hot path of
`botwatch run`, and the agent imports them on the first snapshot it checks.
"""

from ..core import vocabulary

KINDS = vocabulary.SNAPSHOT_KINDS


class SnapshotError(ValueError):
    """A snapshot that cannot be read: the message says why (answered 400, counted)."""
