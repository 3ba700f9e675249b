"""Coverage-guided fuzzing of the Robot Framework output.xml reader (atheris / libFuzzer).

    python tests/fuzz/fuzz_output_xml.py -atheris_runs=100000

Each input is a real output.xml of tests/corpus/robot/ spliced with fuzzer bytes, or the bytes
alone. The reader gives events or raises ParseError / IncompleteOutputError; anything else is a
crash the fuzzer reports (and libFuzzer's -timeout reports a hang).
"""

import sys
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["botwatch"]):
    from botwatch.parsers.base import ParseError
    from botwatch.parsers.robot_output import IncompleteOutputError, parse_output_xml

CORPUS = Path(__file__).resolve().parent.parent / "corpus" / "robot"
SEEDS = [p.read_bytes() for p in sorted(CORPUS.glob("*.xml"))]


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    if fdp.ConsumeBool():
        seed = SEEDS[fdp.ConsumeIntInRange(0, len(SEEDS) - 1)]
        at = fdp.ConsumeIntInRange(0, len(seed))
        cut = fdp.ConsumeIntInRange(0, 256)
        doc = seed[:at] + fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 256)) + seed[at + cut:]
    else:
        doc = fdp.ConsumeBytes(fdp.remaining_bytes())
    try:
        events = parse_output_xml(doc, "b")
    except (ParseError, IncompleteOutputError):
        return
    if not events or events[0].type != "run_started" or events[-1].type != "run_finished":
        raise AssertionError(f"a run without its start or end from {doc[:200]!r}")


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
