"""A bot that writes given output.

    outbot.py bytes OUT_FILE ERR_FILE   copy the files' bytes to stdout and stderr, alternating
                                        in chunks of varying size
    outbot.py lines N                   write `out I` to stdout and `err I` to stderr for I < N,
                                        alternating, each line flushed at once
"""

import os
import sys


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def main() -> None:
    mode = sys.argv[1]
    if mode == "bytes":
        with open(sys.argv[2], "rb") as f:
            out = f.read()
        with open(sys.argv[3], "rb") as f:
            err = f.read()
        i = j = 0
        size = 1
        while i < len(out) or j < len(err):
            write_all(1, out[i:i + size])
            write_all(2, err[j:j + size // 2 + 1])
            i += size
            j += size // 2 + 1
            size = size * 3 % 20011 + 1
    elif mode == "lines":
        for i in range(int(sys.argv[2])):
            sys.stdout.write(f"out {i}\n")
            sys.stdout.flush()
            sys.stderr.write(f"err {i}\n")
            sys.stderr.flush()
    else:
        sys.exit(f"outbot: unknown mode {mode!r}")


if __name__ == "__main__":
    main()
