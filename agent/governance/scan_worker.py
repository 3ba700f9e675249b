"""`python -m botwatch.governance.scan_worker`: one batch of secret scanning, then exit.

The agent scans bots' sources through this short-lived process (secrets.scan_in_subprocess), so
that detect-secrets and what it loads never stay in the agent's memory. Reads
`{"files": [path, ...]}` on stdin, writes `{"hits": [[[line, type], ...], ...]}` (one list per
file, in order) on stdout: names and line numbers only, never a secret.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .secrets import scan_in_process


def main() -> int:
    request = json.load(sys.stdin)
    hits = scan_in_process([Path(f) for f in request["files"]])
    json.dump({"hits": [list(map(list, h)) for h in hits]}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
