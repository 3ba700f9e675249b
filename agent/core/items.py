"""Work items a run reports (`botwatch.items()`, `items` of a run_finished event, a check-in's
`?items=`): their bound, and the hand-off file through which a wrapped command's SDK calls reach
`botwatch run`.

`botwatch run` names a file in its command's environment ($BOTWATCH_ITEMS_FILE); every
`botwatch.items()` made outside an SDK run appends one line `PROCESSED FAILED` to it, and the
wrapper adds the lines up when the command has ended, so the totals travel with the run's end
(to an agent, a Pushgateway or a textfile alike). Appending, not rewriting, lets several
processes of one run report. No imports: this is on the wrapper's path.
"""

MAX_ITEMS = 1_000_000_000  # items one run reports, per status: far beyond any batch, bounded for the sums
ITEMS_FILE_ENV = "BOTWATCH_ITEMS_FILE"
MAX_FILE_BYTES = 16 * 1024 * 1024  # of a hand-off file read: some 700 000 calls of botwatch.items()


def line(processed: int, failed: int) -> bytes:
    return f"{processed} {failed}\n".encode("ascii")


def total(data: bytes) -> tuple[int, int, int]:
    """(processed, failed, unreadable lines) of a hand-off file's content; each sum at most
    MAX_ITEMS. A line cut short (a process killed while writing) is unreadable, not fatal."""
    processed = failed = bad = 0
    for raw in data.split(b"\n"):
        if not raw:
            continue
        parts = raw.split(b" ")
        if len(parts) != 2 or not all(p.isdigit() and len(p) <= 10 for p in parts):
            bad += 1
            continue
        processed += int(parts[0])
        failed += int(parts[1])
    return min(processed, MAX_ITEMS), min(failed, MAX_ITEMS), bad
