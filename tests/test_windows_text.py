"""Windows text, tested as logic on Linux: a bot's output in the console's or the ANSI code page,
files opened with their encoding named, source files in UTF-16 or UTF-8 whatever the locale, and
tables printed to a redirected cp1252 stdout. Tests that need Windows itself are marked so."""

from __future__ import annotations

import ast
import codecs
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from botwatch.client import output_text
from botwatch.client.output_text import decode_output, fallback_encoding, incomplete_utf8_end
from botwatch.client.wrapper import TAIL_BYTES, Tail
from botwatch.governance.secrets import SecretScanner, decode_source, scan_copy
from conftest import BOTWATCH, free_port

ROOT = Path(__file__).resolve().parents[1]
DENIED = "Zugriff verweigert: Datei »Übersicht_März.xlsx« ist geöffnet (Größe 5 KB)"
windows_only = pytest.mark.windows_only("console code pages")


# -- a bot's output -----------------------------------------------------------------------------

@pytest.mark.parametrize("codepage", ["cp850", "cp1252", "cp437"])
def test_output_that_is_not_utf8_reads_in_the_code_page_it_was_written_in(codepage):
    text = DENIED if codepage != "cp437" else DENIED.replace("»", '"').replace("«", '"')  # cp437 has no guillemets
    data = text.encode(codepage)
    assert decode_output(data, codepage) == text
    assert decode_output(data, codepage) != data.decode("utf-8", "replace")  # what was read before


def test_utf8_output_reads_as_utf8_and_the_code_page_is_not_even_asked_for():
    asked = []

    def fallback() -> str:
        asked.append(1)
        return "cp850"

    assert decode_output(DENIED.encode("utf-8"), fallback) == DENIED
    assert decode_output("✓ fertig → nächster Schritt".encode(), fallback) == "✓ fertig → nächster Schritt"
    assert asked == []
    assert decode_output(DENIED.encode("cp850"), fallback) == DENIED and asked == [1]


def test_a_character_cut_off_where_the_bot_stopped_is_no_sign_of_another_encoding():
    data = "Jürgen hat es gelöscht ✓".encode()[:-1]  # killed in the middle of the check mark
    assert decode_output(data, "cp1252") == "Jürgen hat es gelöscht \ufffd"
    assert incomplete_utf8_end(data) == 2
    assert incomplete_utf8_end("✓".encode()) == 0 and incomplete_utf8_end(b"abc") == 0
    assert incomplete_utf8_end("ä".encode("cp1252")) == 1  # 0xE4 could begin a character of 3 bytes...
    assert incomplete_utf8_end(b"Gr\xfc") == 0  # ...0xFC begins none


def test_an_unknown_code_page_falls_back_to_utf8_with_replacement():
    assert decode_output(b"caf\xe9", "no-such-codec") == "caf\ufffd"


@pytest.mark.parametrize("pages,preferred,chosen", [
    ((850, 850, 1252), "utf-8", "cp850"),  # the console's output code page first
    ((0, 437, 1252), "utf-8", "cp437"),  # no console: the OEM one a new console starts with
    ((65001, 850, 1252), "utf-8", "cp850"),  # chcp 65001, yet the output was not UTF-8
    ((0, 0, 1252), "utf-8", "cp1252"),
    ((99999, 1252), "utf-8", "cp1252"),  # a code page Python has no codec for is passed over
    ((), "cp1252", "cp1252"),  # POSIX: the locale's
    ((), "", "utf-8"),
])
def test_the_fallback_is_the_first_known_code_page_else_the_locale(pages, preferred, chosen):
    assert fallback_encoding(pages, preferred) == chosen


def test_utf8_split_across_reads_and_interleaved_with_the_other_stream_stays_whole():
    text = "Größe überschritten – Zugriff verweigert ✓ 日本\n"
    tail = Tail()
    for byte in text.encode():  # one byte per read: every character cut, stderr in between
        tail.add(bytes([byte]), 1)
        tail.add(b"E", 2)
    expected = "".join("E" * (len(c.encode()) - 1) + c + "E" for c in text)
    assert tail.text() == expected


def test_a_window_that_begins_inside_a_character_leaves_its_rest_out():
    euro = "€".encode()  # 3 bytes; TAIL_BYTES is not a multiple of 3, so the window cuts one
    assert TAIL_BYTES % 3
    for count in (TAIL_BYTES // 3 + 5000, TAIL_BYTES):  # window taken at the end / buffer trimmed
        tail = Tail()
        tail.add(euro * count, 1)
        assert tail.text() == "€" * (TAIL_BYTES // 3)


def test_a_bot_that_writes_in_the_console_code_page_is_read_in_it(monkeypatch):
    from botwatch import _platform

    monkeypatch.setattr(_platform, "output_code_pages", lambda: (850, 850, 1252), raising=False)
    tail = Tail()
    data = (DENIED + "\r\n").encode("cp850")
    tail.add(data[:7], 1)
    tail.add(data[7:], 1)
    assert tail.text() == DENIED + "\r\n"
    assert output_text.output_fallback() == "cp850"


@windows_only
def test_the_wrapper_records_a_bots_code_page_output_as_it_was_meant(tmp_path):
    import locale

    from botwatch import _platform

    encoding = fallback_encoding(_platform.output_code_pages(), locale.getpreferredencoding(False))
    try:
        DENIED.encode(encoding)
    except UnicodeEncodeError:
        pytest.skip(f"this host's code page {encoding} cannot write the sample")
    bot = f"import sys\nsys.stdout.buffer.write({DENIED!r}.encode({encoding!r}) + b'\\r\\n')\nsys.exit(1)\n"
    env = {k: v for k, v in os.environ.items() if k not in ("BOTWATCH_CONFIG", "BOTWATCH_AGENT_URL")}
    env.update(BOTWATCH_SPOOL=str(tmp_path / "spool.db"), BOTWATCH_NO_DELIVERY="1")
    proc = subprocess.run([*BOTWATCH, "run", "--bot", "b", "--", sys.executable, "-c", bot], cwd=tmp_path,
                          capture_output=True, env=env, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == DENIED.encode(encoding) + b"\r\n"  # passed through untouched
    db = sqlite3.connect(tmp_path / "spool.db")
    try:
        tail = db.execute("SELECT json_extract(event, '$.output_tail') FROM outbox WHERE kind = 'finish'").fetchone()
    finally:
        db.close()
    assert DENIED in tail[0]


# -- files the project reads and writes name their encoding ------------------------------------

TEXT_DEFAULT = "the locale's encoding (cp1252 on Windows)"


def _mode(call: ast.Call, position: int) -> ast.expr | None:
    for kw in call.keywords:
        if kw.arg == "mode":
            return kw.value
    return call.args[position] if len(call.args) > position else None


def _names_encoding(call: ast.Call, position: int | None = None) -> bool:
    if any(kw.arg == "encoding" or kw.arg is None for kw in call.keywords):  # encoding=, or **kwargs
        return True
    return position is not None and len(call.args) > position


def _is_text_mode(mode: ast.expr | None) -> bool:
    if mode is None:
        return True  # "r"
    if isinstance(mode, ast.Constant) and isinstance(mode.value, str):
        return "b" not in mode.value
    return True  # a mode worked out at run time: name the encoding anyway


def _looks_like_mode(node: ast.expr | None) -> bool:
    return node is None or (isinstance(node, ast.Constant) and isinstance(node.value, str)
                            and set(node.value) <= set("rwxabt+"))


def text_files_without_encoding(source: str, filename: str = "<source>") -> list[str]:
    """Calls that open a file in text mode without naming its encoding (so in the locale's)."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
        owner = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else None
        bad = False
        if name == "open" and (isinstance(f, ast.Name) or owner in ("io", "codecs")):
            # open(file, mode, buffering, encoding)
            bad = owner != "codecs" and _is_text_mode(_mode(node, 1)) and not _names_encoding(node, 3)
        elif name == "fdopen" and owner == "os":
            bad = _is_text_mode(_mode(node, 1)) and not _names_encoding(node, 3)
        elif name == "open" and isinstance(f, ast.Attribute) and _looks_like_mode(_mode(node, 0)):
            # Path.open(mode, buffering, encoding); Image.open(fp) and the like take no mode
            bad = _is_text_mode(_mode(node, 0)) and not _names_encoding(node, 2)
        elif name == "read_text":
            bad = not _names_encoding(node, 0)
        elif name == "write_text":
            bad = not _names_encoding(node, 1)
        elif name == "FileHandler":
            bad = not _names_encoding(node, 2)
        elif name == "TextIOWrapper":
            bad = not _names_encoding(node, 1)
        elif name in ("NamedTemporaryFile", "TemporaryFile", "SpooledTemporaryFile"):
            mode = _mode(node, 0 if name != "SpooledTemporaryFile" else 1)
            bad = mode is not None and _is_text_mode(mode) and not _names_encoding(node)
        elif owner == "subprocess" or name in ("run", "check_output", "Popen"):
            text = [kw for kw in node.keywords if kw.arg in ("text", "universal_newlines")
                    and not (isinstance(kw.value, ast.Constant) and not kw.value.value)]
            bad = bool(text) and not _names_encoding(node)
        if bad:
            found.append(f"{filename}:{node.lineno}: {ast.unparse(node)[:100]}")
    return found


def test_the_lint_finds_text_files_opened_in_the_locales_encoding():
    bad = textwrap.dedent("""\
        open(p)
        open(p, "w")
        io.open(p, "a+")
        os.fdopen(fd, "w")
        Path(p).open()
        Path(p).open("w")
        Path(p).read_text()
        Path(p).write_text(s)
        logging.FileHandler(p)
        io.TextIOWrapper(buf)
        tempfile.NamedTemporaryFile("w")
        subprocess.run(argv, text=True)
        subprocess.check_output(argv, universal_newlines=True)
        """)
    good = textwrap.dedent("""\
        open(p, "rb")
        open(p, "w", encoding="utf-8")
        open(p, "r", -1, "utf-8")
        os.fdopen(fd, "wb")
        Path(p).open("rb")
        Path(p).read_text(encoding="utf-8")
        Path(p).read_bytes()
        Path(p).write_text(s, encoding="utf-8")
        logging.FileHandler(p, encoding="utf-8")
        Image.open(io.BytesIO(data))
        webbrowser.open(url)
        tempfile.NamedTemporaryFile()
        subprocess.run(argv, capture_output=True)
        subprocess.run(argv, text=True, encoding="utf-8")
        """)
    assert len(text_files_without_encoding(bad)) == len(bad.splitlines())
    assert text_files_without_encoding(good) == []


def test_no_file_of_the_package_is_opened_in_the_locales_encoding():
    # Windows' locale encoding is the ANSI code page: a text file opened without its encoding
    # there reads UTF-8 wrong, or fails writing a character cp1252 lacks
    found = []
    for folder in ("agent", "exporters"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            found += text_files_without_encoding(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert found == [], "open these with encoding= (usually utf-8):\n" + "\n".join(found)


# -- source files scanned for secrets ----------------------------------------------------------

SCRIPT = "# Größe prüfen, Zugriff für Jürgen ✓\r\nuser = 'svc_bot'\r\n\r\npassword = 'Xq7#pL9vR2mK8wZs'\r\n"
SECRET_LINE = 4


@pytest.mark.parametrize("codec,bom", [("utf-16-le", codecs.BOM_UTF16_LE), ("utf-16-be", codecs.BOM_UTF16_BE),
                                       ("utf-8", codecs.BOM_UTF8), ("utf-32-le", codecs.BOM_UTF32_LE)])
def test_a_source_file_is_read_in_the_encoding_its_bom_names(codec, bom):
    assert decode_source(bom + SCRIPT.encode(codec)) == SCRIPT


def test_a_source_file_without_a_bom_is_utf8_and_bytes_that_are_not_are_replaced():
    assert decode_source(SCRIPT.encode()) == SCRIPT
    assert decode_source(b"x = 'caf\xe9'\n") == "x = 'caf\ufffd'\n"


@pytest.mark.parametrize("codec,bom", [("utf-16-le", codecs.BOM_UTF16_LE), ("utf-16-be", codecs.BOM_UTF16_BE)])
def test_a_utf16_script_with_a_password_is_found_at_its_line(tmp_path, codec, bom):
    (tmp_path / "run.ps1").write_bytes(bom + SCRIPT.encode(codec))  # as PowerShell ISE saves it
    (tmp_path / "clean.ps1").write_bytes(bom + "Write-Host 'Grüße'\r\n".encode(codec))
    scan = SecretScanner().scan_paths([tmp_path])
    assert scan.hits == [(str(tmp_path / "run.ps1"), SECRET_LINE, "Secret Keyword")]
    assert scan.scanned == 2 and scan.notes == []  # not taken for binary files for their NUL bytes
    assert sorted(os.listdir(tmp_path)) == ["clean.ps1", "run.ps1"]


def test_what_detect_secrets_reads_under_a_cp1252_locale_is_the_same_text_line_for_line():
    utf8 = SCRIPT.encode()
    copy = scan_copy(utf8, "cp1252")
    assert copy is not None
    text = copy.decode("cp1252")
    assert text.splitlines() == ["# Größe prüfen, Zugriff für Jürgen ?", "user = 'svc_bot'", "",
                                 "password = 'Xq7#pL9vR2mK8wZs'"]
    assert scan_copy(codecs.BOM_UTF16_LE + SCRIPT.encode("utf-16-le"), "utf-8") == utf8
    # read where they are: ASCII anywhere, UTF-8 under a UTF-8 locale
    assert scan_copy(b"password = 'x'\n", "cp1252") is None
    assert scan_copy(utf8, "UTF-8") is None


@pytest.mark.posix_only("the C locale is POSIX's; Windows' own is cp1252 already")
def test_a_utf8_script_with_umlauts_and_a_password_is_found_under_a_locale_that_is_not_utf8(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "recon.py").write_bytes(SCRIPT.encode())
    code = ("import locale, sys\nfrom botwatch.governance.secrets import SecretScanner\n"
            "print(locale.getpreferredencoding(False))\n"
            f"print(SecretScanner().scan_paths([__import__('pathlib').Path({str(tmp_path / 'src')!r})]).hits)\n")
    # the C locale without coercion or UTF-8 mode: open() reads ASCII, as cp1252 reads Windows-1252
    env = {k: v for k, v in os.environ.items() if not k.startswith("LC_") and k not in ("LANG", "PYTHONUTF8")}
    env.update(LC_ALL="C", PYTHONUTF8="0", PYTHONCOERCECLOCALE="0")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                          encoding="utf-8")
    assert proc.returncode == 0, proc.stderr
    encoding, hits = proc.stdout.splitlines()
    assert codecs.lookup(encoding).name != "utf-8"
    assert hits == repr([(str(tmp_path / "src" / "recon.py"), SECRET_LINE, "Secret Keyword")])


# -- tables printed to a redirected stdout ------------------------------------------------------

def test_botwatch_status_prints_to_a_cp1252_stdout_what_it_cannot_encode_as_question_marks(tmp_path):
    home = tmp_path / "Ablage ✓ → Проекты"  # the journal's path is in the title
    home.mkdir()
    (home / "botwatch.yaml").write_text(textwrap.dedent(f"""\
        agent:
          listen: 127.0.0.1:{free_port()}
        bots:
          - name: invoice-recon
            team: "Finanz ✓ → Ω"
        """), encoding="utf-8")
    from botwatch.state.journal import Journal

    Journal(home / "botwatch-journal.db").close()
    env = {k: v for k, v in os.environ.items() if k not in ("BOTWATCH_CONFIG", "BOTWATCH_AGENT_URL")}
    env.update(PYTHONIOENCODING="cp1252")
    proc = subprocess.run([*BOTWATCH, "status", "--config", str(home / "botwatch.yaml")], capture_output=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode("cp1252", "replace")
    out = proc.stdout.decode("cp1252")
    assert "invoice-recon" in out and "Finanz ? ? ?" in out
    assert "Ablage ? ? ???????" in " ".join(out.split())  # the title wraps at the table's width
    assert "UnicodeEncodeError" not in proc.stderr.decode("cp1252", "replace")
