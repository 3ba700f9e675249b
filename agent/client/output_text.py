"""A bot's output as text: UTF-8 when it is, else the code page Windows programs write in.

A program whose output is redirected to a pipe writes in the console's code page (cmd.exe, the
system's tools, .NET's Console: OEM, e.g. cp850 "Zugriff verweigert") or in the ANSI code page
(e.g. cp1252), never in UTF-8 unless told to. Read as UTF-8 with replacement, every umlaut of
such output is lost, and with it what the failure patterns look for. Valid UTF-8 is rarely
anything else, so it is tried first. Standard library only: `botwatch run` loads this.
"""

from __future__ import annotations

import codecs

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (the wrapper's path)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

UTF8_CODE_PAGE = 65001


def decode_output(data: bytes, fallback: str | Callable[[], str]) -> str:
    """`data` as UTF-8 when it is UTF-8, else in `fallback` (an encoding, or a function giving it:
    asked only then) with undecodable bytes replaced. A character cut off at the very end (a
    bot ended in the middle of writing it) is no sign of another encoding: it reads as U+FFFD."""
    whole = len(data) - incomplete_utf8_end(data)
    try:
        text = data[:whole].decode("utf-8")
    except UnicodeDecodeError:
        encoding = fallback() if callable(fallback) else fallback
        try:
            return data.decode(encoding, "replace")
        except LookupError:
            return data.decode("utf-8", "replace")
    return text + "\ufffd" if whole < len(data) else text


def incomplete_utf8_end(data: bytes) -> int:
    """How many bytes at the end of `data` begin a UTF-8 character that is not complete yet
    (0 when it ends on a whole character, or on bytes that are no UTF-8 at all)."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte < 0x80:
            return 0
        if byte >= 0xC0:  # a lead byte: how long its character is (C0, C1, F5-FF lead none)
            if not 0xC2 <= byte <= 0xF4:
                return 0
            length = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return back if length > back else 0
    return 0  # continuation bytes only, as far as a character reaches: not UTF-8's to wait for


def utf8_start(data: bytes | bytearray, start: int) -> int:
    """`start`, moved past the continuation bytes there (at most 3): where the first whole
    UTF-8 character at or after it begins, when `data` is cut at `start`."""
    end = min(start + 3, len(data))
    while start < end and 0x80 <= data[start] < 0xC0:
        start += 1
    return start


def fallback_encoding(code_pages: Iterable[int], preferred: str) -> str:
    """The encoding of output that is not UTF-8: the first of the Windows code pages given (the
    console's output code page, the OEM one, the ANSI one; 0 is none) that Python knows, else
    `preferred` (the locale's). UTF-8's own code page is passed over: the output was not UTF-8."""
    for page in code_pages:
        if page and page != UTF8_CODE_PAGE:
            try:
                return codecs.lookup(f"cp{page}").name
            except LookupError:
                continue
    return preferred or "utf-8"


def output_fallback() -> str:
    """The encoding this host's programs write redirected output in, when it is not UTF-8."""
    import locale

    from .. import _platform

    try:
        pages = _platform.output_code_pages()
    except Exception:  # the code pages are a guess's input: never a reason to lose the output
        pages = ()
    return fallback_encoding(pages, locale.getpreferredencoding(False))
