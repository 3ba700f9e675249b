"""Coverage-guided fuzzing of the UiPath log parser (atheris / libFuzzer).

    python tests/fuzz/fuzz_uipath_line.py -atheris_runs=100000

Each input is a batch of log lines (split at LF, as the log watcher splits them), built from a
real line of tests/corpus/uipath/ spliced with fuzzer bytes or from the bytes alone. Every line
gives events or a ParseError, and a batch read with `feed_raw_lines` gives what feeding the
decoded lines one by one gives; anything else is a crash the fuzzer reports.
"""

import sys
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["botwatch"]):
    from botwatch.core.classify import Classifier
    from botwatch.config.estate import BotConfig, LogSpec
    from botwatch.parsers.base import ParseError, make_parser

CORPUS = Path(__file__).resolve().parent.parent / "corpus" / "uipath"
SEEDS = [line for p in sorted(CORPUS.glob("*.log")) for line in p.read_bytes().split(b"\n") if line.strip()]
CLASSIFIER = Classifier()


def parser(process_name=None):
    return make_parser(BotConfig(name="b"), LogSpec(path="x.log", format="uipath", process_name=process_name),
                       CLASSIFIER)


def lines_of(data: bytes) -> list[bytes]:
    fdp = atheris.FuzzedDataProvider(data)
    if fdp.ConsumeBool():
        seed = SEEDS[fdp.ConsumeIntInRange(0, len(SEEDS) - 1)]
        at = fdp.ConsumeIntInRange(0, len(seed))
        cut = fdp.ConsumeIntInRange(0, 64)
        return (seed[:at] + fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 64)) + seed[at + cut:]).split(b"\n")
    return fdp.ConsumeBytes(fdp.remaining_bytes()).split(b"\n")


def test_one_input(data: bytes) -> None:
    raw = lines_of(data)
    decoded = [(b[:-1] if b.endswith(b"\r") else b).decode("utf-8", "replace") for b in raw]
    for process_name in (None, "Test*"):
        one = parser(process_name)
        events, errors = [], 0
        for line in decoded:
            if not line or line.isspace():
                continue
            try:
                events += one.feed(line)
            except ParseError:
                errors += 1
        fed = parser(process_name).feed_raw_lines(raw)
        if fed.failure is not None:
            raise fed.failure
        if (fed.events, fed.errors) != (events, errors):
            raise AssertionError(f"feed_raw_lines differs from feeding line by line for {raw!r}")


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
