"""POSIX: the bot runs in its own process group; output is pumped with poll(); the child's
exit is seen through a pidfd where the kernel has one. Imports stay minimal: this is the
hot path of `botwatch run`."""

from __future__ import annotations

import os
import select
import signal

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (the hot path)
if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable, Iterable
    from resource import struct_rusage
    from typing import IO, Protocol

    class Signallable(Protocol):
        """A descendant process to signal (a psutil.Process)."""

        def send_signal(self, sig: int) -> None: ...


_STREAMS = 2  # stdout, stderr


class Child:
    """A bot process in its own process group, with stdout and stderr piped to us."""

    def __init__(self, argv: list[str]):
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        actions = [
            (os.POSIX_SPAWN_DUP2, out_w, 1),
            (os.POSIX_SPAWN_DUP2, err_w, 2),
            (os.POSIX_SPAWN_CLOSE, out_r),
            (os.POSIX_SPAWN_CLOSE, err_r),
        ]
        try:
            # setsigdef: Python ignores SIGPIPE and SIGXFSZ; the bot must get the defaults back.
            self.pid = os.posix_spawnp(
                argv[0], argv, os.environ, file_actions=actions, setpgroup=0,
                setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
            )
        except BaseException:
            for fd in (out_r, out_w, err_r, err_w):
                os.close(fd)
            raise
        os.close(out_w)
        os.close(err_w)
        self.pgid = self.pid
        self._fds = {out_r: 1, err_r: 2}
        self._poll = select.poll()
        for fd in self._fds:
            self._poll.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        self._pidfd: int | None = None
        if hasattr(os, "pidfd_open"):
            try:
                self._pidfd = os.pidfd_open(self.pid)
                self._poll.register(self._pidfd, select.POLLIN)
            except OSError:
                self._pidfd = None
        self.status: int | None = None  # raw wait status once reaped
        self.rusage: struct_rusage | None = None
        self.warning: str | None = None  # a monitoring problem for the wrapper to say: none here

    # -- pumping ----------------------------------------------------------------------------
    def pump(self, sink: Callable[[int, bytes], object], timeout: float) -> None:
        """Wait up to `timeout` seconds; pass any output to sink(stream, data); reap on exit."""
        if self._pidfd is None and self.status is None:
            timeout = min(timeout, 0.05)  # no pidfd: poll the exit status a few times a second
        for fd, _ev in self._poll.poll(max(0, int(timeout * 1000))):
            if fd == self._pidfd:
                self._reap(block=True)
                continue
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            if data:
                sink(self._fds[fd], data)
            else:
                self._poll.unregister(fd)
                os.close(fd)
                del self._fds[fd]
        if self.status is None and self._pidfd is None:
            self._reap(block=False)

    @property
    def exited(self) -> bool:
        return self.status is not None

    @property
    def output_open(self) -> bool:
        return bool(self._fds)

    def _reap(self, block: bool) -> None:
        if self.status is not None:
            return
        try:
            pid, status, rusage = os.wait4(self.pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            pid, status, rusage = self.pid, 0, None
        if pid == self.pid:
            self.status, self.rusage = status, rusage
            if self._pidfd is not None:
                self._poll.unregister(self._pidfd)
                os.close(self._pidfd)
                self._pidfd = None

    def close_output(self) -> None:
        for fd in list(self._fds):
            self._poll.unregister(fd)
            os.close(fd)
        self._fds.clear()

    # -- results ----------------------------------------------------------------------------
    def exit_code(self) -> tuple[int, int | None]:
        """(exit code as a shell reports it, terminating signal or None)."""
        st = self.status or 0
        if os.WIFSIGNALED(st):
            sig = os.WTERMSIG(st)
            return 128 + sig, sig
        return os.waitstatus_to_exitcode(st), None

    def rusage_cpu(self) -> float | None:
        """CPU seconds of the reaped child and of the descendants it reaped."""
        r = self.rusage
        return None if r is None else r.ru_utime + r.ru_stime

    def peak_memory(self) -> int | None:
        """None: rusage's maxrss is useless here (Linux carries it over exec); the wrapper's
        samples of the tree tell."""
        return None

    # -- signals ----------------------------------------------------------------------------
    def forward(self, sig: int) -> None:
        """Send `sig` to the bot's whole process group (a vanished group is fine)."""
        try:
            os.killpg(self.pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def terminate_tree(self, descendants: Iterable[Signallable]) -> None:
        self._signal_tree(signal.SIGTERM, descendants)

    def kill_tree(self, descendants: Iterable[Signallable]) -> None:
        self._signal_tree(signal.SIGKILL, descendants)

    def _signal_tree(self, sig: int, descendants: Iterable[Signallable]) -> None:
        """Signal the group, then every descendant seen (some leave the group with setsid);
        descendants are psutil.Process objects, which refuse to signal a reused pid."""
        self.forward(sig)
        for proc in descendants:
            try:
                proc.send_signal(sig)
            except Exception:
                pass

    def group_alive(self) -> bool:
        try:
            os.killpg(self.pgid, 0)
            return True
        except (ProcessLookupError, PermissionError):
            return False


def install_forwarding(handler: Callable[[int], object]) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: handler(signum))


def spawn_detached(argv: list[str], cwd: str | None = None,
                   popen: Callable[..., subprocess.Popen[bytes]] | None = None) -> subprocess.Popen[bytes] | None:
    """Start a helper that outlives us, in its own session, with no terminal or inherited output
    (so that cron, waiting for the bot's output pipe to close, is not held up by it).

    With `cwd`, it starts there and its handle is returned (subprocess, loaded only then). Without,
    it is posix_spawn'ed in the caller's folder and no handle is kept: what `botwatch run` does at
    every run, without loading subprocess (threading, selectors, locale) on its hot path; a helper
    that must not keep the caller's folder busy moves itself (the deliverer does, first thing)."""
    if cwd is None and popen is None:
        devnull = os.open(os.devnull, os.O_RDWR)
        try:
            os.posix_spawn(argv[0], argv, os.environ, setsid=True, file_actions=[
                (os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1),
                (os.POSIX_SPAWN_DUP2, devnull, 2),
            ])
        finally:
            os.close(devnull)
        return None
    import subprocess

    return (popen or subprocess.Popen)(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, close_fds=True, start_new_session=True, cwd=cwd)


def lock_exclusive(path: str) -> IO[bytes] | None:
    """A non-blocking exclusive lock on `path`: an open file object while held, None if taken."""
    import fcntl

    create_private(path)
    f = open(path, "a+b")
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        return None
    return f


def output_code_pages() -> tuple[int, ...]:
    """No code pages: POSIX programs write in the locale's encoding (client/output_text.py)."""
    return ()


def user_state_dir() -> str:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "botwatch")


# Data files (journal, spool, their -wal and -shm, spool.log) are private to the user botwatch
# runs as: the journal holds raw snapshot pages, the spool and its log name runs and agents.


def private_dir(path: str) -> None:
    """Create the folder `path` and the missing folders above it 0700. A folder that exists is
    left as it is: the user chose it, and may share it with other programs."""
    missing: list[str] = []
    p = os.path.abspath(path)
    while not os.path.isdir(p):
        missing.append(p)
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    for p in reversed(missing):
        try:
            os.mkdir(p, 0o700)
        except FileExistsError:
            if not os.path.isdir(p):  # a file in the way: say so
                raise


def create_private(path: str) -> None:
    """Create the file `path` 0600 (SQLite gives a database's -wal and -shm the database's
    mode); an existing one is narrowed to its owner as narrow_private does."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    except FileExistsError:
        narrow_private(path)


def narrow_private(path: str) -> None:
    """Take group and other permissions off `path` if it exists and is ours (older botwatch
    versions created data files 0644). A file of another user is left alone, as is one that
    cannot be changed (a read-only mount): opening it says what is wrong, if anything."""
    try:
        st = os.stat(path)
        if st.st_uid == os.getuid() and st.st_mode & 0o077:
            os.chmod(path, st.st_mode & 0o700)
    except OSError:
        pass
