"""Coverage-guided fuzzing of the estate file parser (atheris / libFuzzer).

    python tests/fuzz/fuzz_estate.py -atheris_runs=100000

Each input is examples/demo/botwatch.yaml spliced with fuzzer text, or the text alone. The
parser gives an Estate or a ConfigError whose problems are each `estate.yaml:LINE: message`
on one line; anything else is a crash the fuzzer reports.
"""

import re
import sys
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["botwatch"]):
    from botwatch.config.estate import ConfigError, parse_estate_text

ROOT = Path(__file__).resolve().parent.parent.parent
SEEDS = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "examples").rglob("*.yaml"))
         if re.search(r"^bots:", p.read_text(encoding="utf-8"), re.M)]
PROBLEM = re.compile(r"^estate\.yaml(?::\d+)?: \S[^\n]*$")


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    if SEEDS and fdp.ConsumeBool():
        seed = SEEDS[fdp.ConsumeIntInRange(0, len(SEEDS) - 1)]
        at = fdp.ConsumeIntInRange(0, len(seed))
        cut = fdp.ConsumeIntInRange(0, 64)
        text = seed[:at] + fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 64)) + seed[at + cut:]
    else:
        text = fdp.ConsumeUnicode(fdp.remaining_bytes())
    try:
        parse_estate_text(text, "estate.yaml")
    except ConfigError as exc:
        bad = [p for p in exc.problems if not PROBLEM.match(p)]
        if not exc.problems or bad:
            raise AssertionError(f"problems not as `estate.yaml:LINE: message`: {bad or exc.problems!r}")


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
