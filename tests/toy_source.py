"""A source defined outside the agent, in one file, loaded by `agent.source_modules: [toy_source]`.

It is driven through the folder named by TOY_SOURCE_DIR (it is wanted only when that is set):
every poll records one finished run of bot `toy-bot` (run ids toy-1, toy-2, ... continuing from
its checkpoint), a file `bad` is counted as a parse error and removed, a file `crash` holding N
makes the next N polls raise. Its first poll writes the checkpoint it restored to `restored.json`.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from botwatch.core.events import RunFinished
from botwatch.sources.base import Source

LABEL = "toy"


class ToySource(Source):
    name = "toy"
    event_labels = (LABEL,)
    error_labels = (LABEL,)
    config_keys = ()  # driven by TOY_SOURCE_DIR
    default_interval = 0.3

    def __init__(self, state, journal, folder: Path):
        super().__init__(state, journal)
        self.folder = folder
        self.count: int | None = None

    @classmethod
    def wanted(cls, loaded) -> bool:
        return bool(os.environ.get("TOY_SOURCE_DIR"))

    @classmethod
    def from_estate(cls, loaded, state, journal, **deps) -> "ToySource":
        return cls(state, journal, Path(os.environ["TOY_SOURCE_DIR"]))

    def poll_once(self) -> None:
        if self.count is None:
            restored = self.load_checkpoint("runs")
            (self.folder / "restored.json").write_text(json.dumps(restored))
            self.count = restored["count"] if restored else 0
        crash = self.folder / "crash"
        if crash.exists():
            left = int(crash.read_text() or 0)
            if left > 0:
                crash.write_text(str(left - 1))
                raise RuntimeError("the toy source crashes on purpose")
        bad = self.folder / "bad"
        if bad.exists():
            bad.unlink()
            self.state.count_parse_error(LABEL)
        self.count += 1
        self.state.apply([RunFinished(bot="toy-bot", run_id=f"toy-{self.count}", ended=time.time(),
                                      outcome="success", source=LABEL)])
        self.save_checkpoint("runs", {"count": self.count})
