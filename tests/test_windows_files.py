"""Windows files, tested as logic on Linux: watched logs read without keeping their writer from
rotating them, snapshot files judged by os.stat, and no journal or spool on a network share
(SQLite's WAL does not work there). Tests that need Windows itself are marked so."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from botwatch._platform import netpaths, sharing
from botwatch._platform.netpaths import describe_network_path, is_network_path, parse_mounts
from botwatch.client import spool as spool_module
from botwatch.client.spool import Spool
from botwatch.config.estate import AgentConfig, BotConfig, ConfigError, Estate, LoadedEstate
from botwatch.server.daemon import refuse_network_journal, serve
from botwatch.sources import tailer
from botwatch.sources.snapshots import SnapshotWatcher
from botwatch.state.journal import Journal
from botwatch.state.runtime import EstateState
from botwatch.ui.probe import DriftProbe
from test_logs import REGEX, Agent, append, assert_each_finished_once, bot

windows_only = pytest.mark.windows_only("file sharing modes")


# -- watched logs: the writer may rename or delete them while they are read --------------------

def test_watched_files_are_opened_read_only_sharing_read_write_and_delete_and_never_created():
    args = sharing.read_shared_args()
    assert args.share == sharing.FILE_SHARE_READ | sharing.FILE_SHARE_WRITE | sharing.FILE_SHARE_DELETE == 7
    assert args.access == sharing.GENERIC_READ  # no write access: the writer's own sharing may refuse it
    assert args.disposition == sharing.OPEN_EXISTING


def test_a_file_opened_shared_reads_as_bytes_and_a_missing_one_is_not_found(tmp_path):
    (tmp_path / "bot.log").write_bytes(b"line 1\r\nline 2\n")
    with sharing.open_shared(str(tmp_path / "bot.log")) as fh:
        assert fh.read(6) == b"line 1" and os.fstat(fh.fileno()).st_size == 15
        fh.seek(8)
        assert fh.read() == b"line 2\n"
    with pytest.raises(FileNotFoundError):
        sharing.open_shared(str(tmp_path / "missing.log"))
    assert not (tmp_path / "missing.log").exists()


def test_a_log_rotated_while_the_tailer_holds_it_open_is_followed_to_its_end_and_into_the_new_file(
        tmp_path, monkeypatch):
    log = tmp_path / "bot.log"
    log.write_text("2024-05-01T07:00:00Z start 1\n", encoding="utf-8")
    agent = Agent(tmp_path, [bot({"path": "bot.log", **REGEX})])
    agent.poll()
    append(log, "2024-05-01T07:00:05Z end 1 ok\n")
    rotations = []
    real_open = tailer.open_shared

    def open_then_rotate(path):
        fh = real_open(path)
        if not rotations and os.path.abspath(path) == str(log):
            # NLog archiving the log while botwatch reads it: on Windows this rename fails with a
            # sharing violation unless the file was opened sharing delete
            os.replace(log, tmp_path / "bot.log.1")
            log.write_text("2024-05-01T08:00:00Z start 2\n2024-05-01T08:00:03Z end 2 failed\n", encoding="utf-8")
            rotations.append(path)
        return fh

    monkeypatch.setattr(tailer, "open_shared", open_then_rotate)
    agent.poll()
    agent.poll()  # the rotation is seen on the poll after the one it happened in
    assert rotations
    assert {rid: r.outcome for rid, r in agent.runs().items()} == {"1": "success", "2": "failure"}
    assert_each_finished_once(agent)


@windows_only
def test_on_windows_a_log_held_by_the_tailer_can_be_renamed_and_deleted_and_one_held_by_open_cannot(tmp_path):
    log, archived = tmp_path / "bot.log", tmp_path / "bot.2024-05-01.log"
    log.write_bytes(b"line 1\r\n")
    with open(log, "rb"), pytest.raises(PermissionError):
        os.replace(log, archived)  # what NLog met while botwatch read its log
    with sharing.open_shared(str(log)) as fh:
        os.replace(log, archived)
        log.write_bytes(b"line 1 of the new file\r\n")
        assert fh.read() == b"line 1\r\n"  # the handle follows the file it opened
        os.remove(archived)  # a clean-up script
    assert not archived.exists() and log.read_bytes() == b"line 1 of the new file\r\n"


# -- the snapshot folder: a file's size and time from os.stat ------------------------------------

PAGE = (b"<html><body><form id='f'><input name='amount'><button id='btnSubmit'>Submit</button></form>"
        b"<table><tr><td>INV-1</td><td class='amount'>17.00</td></tr></table></body></html>")


def snapshot_watcher(tmp_path: Path) -> tuple[SnapshotWatcher, Journal, EstateState]:
    estate = Estate(bots=[BotConfig(name="invoices")])
    journal = Journal(tmp_path / "journal.db")
    state = EstateState(estate, journal)
    return SnapshotWatcher(tmp_path / "snaps", state, DriftProbe(estate, journal), journal), journal, state


def test_the_snapshot_watcher_judges_a_file_by_os_stat_not_by_the_folder_listing(tmp_path, monkeypatch):
    folder = tmp_path / "snaps" / "invoices" / "invoice"
    folder.mkdir(parents=True)
    (folder / "2025-06-01T07-00-00.html").write_bytes(PAGE)
    watcher, journal, _state = snapshot_watcher(tmp_path)
    real_stat, asked = os.stat, []

    def stat(path, *args, follow_symlinks=True, **kwargs):
        st = real_stat(path, *args, follow_symlinks=follow_symlinks, **kwargs)
        if str(path).startswith(str(folder) + os.sep) and not follow_symlinks:
            asked.append(os.path.basename(path))  # what NTFS has, not what the listing says
            return types.SimpleNamespace(st_size=st.st_size, st_mtime_ns=1_700_000_000_123_456_789,
                                         st_mode=st.st_mode)
        return st

    monkeypatch.setattr(os, "stat", stat)
    try:
        assert watcher.poll_once(settle=False) == 1
    finally:
        monkeypatch.undo()
    assert asked == ["2025-06-01T07-00-00.html"]
    seen = journal.get_checkpoint("snapshots", "invoices/invoice")["seen"]
    assert seen == {"2025-06-01T07-00-00.html": f"{len(PAGE)}:1700000000123456789"}
    journal.close()


@pytest.mark.posix_only("symbolic links need privileges on Windows")
def test_a_link_in_the_snapshot_folder_stays_refused_unread(tmp_path):
    folder = tmp_path / "snaps" / "invoices" / "invoice"
    folder.mkdir(parents=True)
    outside = tmp_path / "private.html"
    outside.write_bytes(PAGE.replace(b"INV-1", b"SECRET-PAYROLL"))
    (folder / "2025-06-01T07-00-00.html").symlink_to(outside)
    watcher, journal, state = snapshot_watcher(tmp_path)
    watcher.poll_once(settle=False)
    assert state.self_metrics()["parse_errors"]["snapshot"] == 1
    assert journal.ui_baselines("invoices") == []  # nothing of the target became a baseline
    journal.close()


# -- no journal or spool on a network share ------------------------------------------------------

MOUNTS = parse_mounts(textwrap.dedent("""\
    /dev/sda1 / ext4 rw,relatime 0 0
    tmpfs /tmp tmpfs rw 0 0
    fs01:/export/bots /mnt/bots nfs4 rw,vers=4.2 0 0
    //fs01/rpa /mnt/rpa cifs rw,vers=3.0 0 0
    /dev/sdb1 /mnt/rpa/local ext4 rw 0 0
    alice@host:/srv /mnt/with\\040space fuse.sshfs rw 0 0
    /dev/sdc1 /mnt/bots ext4 rw 0 0
    server:/share /srv/botwatch 9p rw 0 0
    """))


@pytest.mark.parametrize("path,why", [
    ("/var/lib/botwatch/journal.db", None),
    ("/tmp/spool.db", None),
    ("/mnt/bots/journal.db", None),  # a local disk mounted over the NFS share: the last mount wins
    ("/mnt/rpa/botwatch/journal.db", "on a cifs network file system (mounted at /mnt/rpa)"),
    ("/mnt/rpa/local/journal.db", None),  # the longest mount holding the path decides
    ("/mnt/rpa-local/journal.db", None),  # /mnt/rpa is not a prefix of this folder
    ("/mnt/with space/journal.db", "on a fuse.sshfs network file system (mounted at /mnt/with space)"),
    ("/srv/botwatch/./spool.db", "on a 9p network file system (mounted at /srv/botwatch)"),
    ("/srv/botwatch", "on a 9p network file system (mounted at /srv/botwatch)"),
])
def test_a_path_is_on_a_network_share_when_the_longest_mount_holding_it_is_one(path, why):
    assert describe_network_path(path, windows=False, mounts=MOUNTS) == why
    assert is_network_path(path, windows=False, mounts=MOUNTS) == (why is not None)


def test_without_a_mount_table_a_posix_path_is_not_said_to_be_remote():
    assert describe_network_path("/mnt/rpa/journal.db", windows=False) is None


DRIVES = {"C:\\": 3, "D:\\": 2, "Z:\\": 4}  # fixed, removable, remote (GetDriveTypeW)


@pytest.mark.parametrize("path,why", [
    (r"C:\ProgramData\botwatch\journal.db", None),
    (r"D:\botwatch\spool.db", None),
    (r"Z:\botwatch\journal.db", "on network drive Z:"),
    (r"z:/botwatch/journal.db", "on network drive Z:"),
    (r"\\fs01\rpa\botwatch\journal.db", "a UNC path (a network share)"),
    ("//fs01/rpa/botwatch/journal.db", "a UNC path (a network share)"),
    (r"\\?\UNC\fs01\rpa\journal.db", "a UNC path (a network share)"),
    (r"\\?\C:\ProgramData\botwatch\journal.db", None),
    (r"\\?\Z:\botwatch\journal.db", "on network drive Z:"),
    (r"\\.\C:\botwatch\journal.db", None),
    (r"\\?\Volume{4c1b02c1-d990-11dc-99ae-806e6f6e6963}\botwatch\journal.db", None),
])
def test_a_windows_path_is_on_a_network_share_when_it_is_unc_or_its_drive_is_remote(path, why):
    assert describe_network_path(path, windows=True, drive_type=lambda root: DRIVES.get(root, 1)) == why
    assert is_network_path(path, windows=True, drive_type=lambda root: DRIVES.get(root, 1)) == (why is not None)


def test_a_drive_letter_is_not_judged_without_asking_windows():
    assert describe_network_path(r"Z:\botwatch\journal.db", windows=True) is None
    assert describe_network_path(r"\\fs01\rpa\journal.db", windows=True) == "a UNC path (a network share)"


def test_this_hosts_temporary_folder_is_local(tmp_path):
    assert netpaths.network_path_here(str(tmp_path / "journal.db")) is None


def estate_on(tmp_path: Path, journal: str) -> LoadedEstate:
    return LoadedEstate(Estate(agent=AgentConfig(journal=journal), bots=[BotConfig(name="a")]),
                        tmp_path / "botwatch.yaml")


def test_the_agent_refuses_a_journal_on_a_network_share_naming_the_path_and_why(tmp_path):
    loaded = estate_on(tmp_path, "/mnt/rpa/botwatch/journal.db")

    def remote(path: str) -> str | None:
        return "on a cifs network file system (mounted at /mnt/rpa)" if path.startswith("/mnt/rpa/") else None

    with pytest.raises(ConfigError) as refused:
        refuse_network_journal(loaded, remote)
    (problem,) = refused.value.problems
    assert problem.startswith(f"{tmp_path / 'botwatch.yaml'}: agent.journal: /mnt/rpa/botwatch/journal.db is on a "
                              "cifs network file system (mounted at /mnt/rpa); ")
    assert "WAL" in problem and "local disk" in problem
    refuse_network_journal(estate_on(tmp_path, "journal.db"), remote)  # a local one is fine
    with pytest.raises(ConfigError):  # before anything is started, bound or created
        serve(estate_on(tmp_path, "journal.db"), ("127.0.0.1", 1), network_path=lambda path: "on network drive Z:")
    assert not (tmp_path / "journal.db").exists()


def test_botwatch_agent_with_its_journal_on_a_network_share_exits_2_through_the_config_error_path(tmp_path):
    config = tmp_path / "botwatch.yaml"
    config.write_text("agent:\n  listen: 127.0.0.1:1\n  journal: shared/journal.db\nbots:\n  - name: a\n",
                      encoding="utf-8")
    code = textwrap.dedent(f"""\
        import sys
        from botwatch._platform import netpaths
        netpaths.network_path_here = lambda p: "on network drive Z:" if p.endswith("journal.db") else None
        from botwatch.commands.cli import main
        sys.exit(main(["agent", "--config", {str(config)!r}]))
        """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          encoding="utf-8")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"{config}: agent.journal: {tmp_path / 'shared' / 'journal.db'} is on network "
                                  "drive Z:; the journal is SQLite in WAL mode"), proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "shared").exists()


def test_a_spool_on_a_network_share_is_warned_of_once_and_used_all_the_same(tmp_path, monkeypatch):
    monkeypatch.setattr(netpaths, "network_path_here", lambda p: "on network drive Z:")
    monkeypatch.setattr(spool_module, "_location_checked", set())
    said: list[str] = []
    path = str(tmp_path / "spool.db")
    for run_id in ("r1", "r2"):
        spool = Spool(path, warn=said.append)
        spool.add_finished("b", run_id, started=1.0, ended=2.0, outcome="success", exit_status=0)
        spool.close()
    assert said == [f"the spool {path} is on network drive Z:; SQLite in WAL mode does not work on a network "
                    "share, so runs recorded there may be lost: set BOTWATCH_SPOOL to a path on a local disk"]
    assert Spool(path, warn=said.append).pending() == 2 and len(said) == 1


def test_a_bot_whose_spool_is_on_a_network_share_runs_and_exits_as_always_with_one_warning(tmp_path):
    code = textwrap.dedent("""\
        import sys
        from botwatch._platform import netpaths
        netpaths.network_path_here = lambda p: "a UNC path (a network share)"
        from botwatch.client.wrapper import main
        sys.exit(main(["--bot", "b", "--", sys.executable, "-c", "print('invoice 7 done'); raise SystemExit(3)"]))
        """)
    env = {k: v for k, v in os.environ.items() if k not in ("BOTWATCH_CONFIG", "BOTWATCH_AGENT_URL")}
    env.update(BOTWATCH_SPOOL=str(tmp_path / "spool.db"), BOTWATCH_NO_DELIVERY="1")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env,
                          timeout=120, encoding="utf-8")
    assert proc.returncode == 3 and proc.stdout == "invoice 7 done\n", proc.stderr
    assert proc.stderr.count("is a UNC path (a network share)") == 1, proc.stderr
    db = sqlite3.connect(tmp_path / "spool.db")
    try:
        (event,) = db.execute("SELECT event FROM outbox WHERE kind = 'finish'").fetchall()
    finally:
        db.close()
    assert "\"exit_status\":3" in event[0]

