"""Entry point of the detached deliverer (`python -m botwatch.deliver`).

Every wrapped run starts one; most find another deliverer already at work. So the spool lock
is tried before anything heavy (HTTP, JSON, logging) is imported, and a loser exits at once.
"""

import os
import sys

from .._platform import lock_exclusive
from .spool import default_spool_path


def main() -> int:
    args = sys.argv[1:]
    spool = args[args.index("--spool") + 1] if "--spool" in args[:-1] else default_spool_path()
    folder = os.path.dirname(os.path.abspath(spool))
    if not os.path.isdir(folder):
        return 0  # no spool folder: nothing was ever spooled here
    # work in the spool's folder, not the one it was started in (a bot's): a deliverer waiting
    # for an agent would keep that busy (a mount, a folder Windows cannot rename or delete)
    os.chdir(folder)
    lock = lock_exclusive(spool + ".lock")
    if lock is None:
        return 0  # the holder will deliver our events too
    from .delivery import main as deliver

    return deliver(args, lock)


if __name__ == "__main__":
    sys.exit(main())
