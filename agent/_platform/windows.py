"""Windows: the bot runs in a new process group (so CTRL_BREAK reaches it and not us) and in a
job object (winjob.py), which holds its whole tree; output is pumped by reader threads. The
tree is ended through the job, or through psutil where the bot could not be put in one.
Its decisions are tested on Linux with a fake Popen; kept small on purpose."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (the hot path)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from io import BufferedIOBase
    from typing import IO, Protocol

    from .winjob import Job

    class Signallable(Protocol):
        """A descendant process to end (a psutil.Process)."""

        pid: int

        def kill(self) -> None: ...

CREATE_NEW_PROCESS_GROUP = 0x00000200
DETACHED_PROCESS = 0x00000008
CREATE_NO_WINDOW = 0x08000000
CREATE_BREAKAWAY_FROM_JOB = 0x01000000
DETACHED_FLAGS = DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW
ERROR_ACCESS_DENIED = 5
CTRL_BREAK_EVENT = 1  # signal.CTRL_BREAK_EVENT, which exists on Windows only


class Child:
    def __init__(self, argv: list[str], popen: Callable[..., subprocess.Popen[bytes]] = subprocess.Popen) -> None:
        import shutil

        from . import winjob
        from .commands import resolve

        self._proc = popen(resolve(argv, shutil.which), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           creationflags=CREATE_NEW_PROCESS_GROUP)
        self.pid = self._proc.pid
        # Into the job at once. subprocess cannot start it suspended (CREATE_SUSPENDED needs the
        # thread handle it closes), so a process the bot starts in its first instants, before the
        # assignment, would stay outside: a bot's interpreter or runtime takes longer to load.
        self._job: Job | None
        self._job, why = winjob.contain(self.pid)
        self.warning = None  # said once by the wrapper
        if self._job is None and self._proc.poll() is None:
            self.warning = (f"{why}: a timeout ends the processes last seen in the bot's tree only, and its CPU "
                            f"time and memory are sampled; the bot runs on")
        self._q: queue.Queue[tuple[int, bytes | None]] = queue.Queue()  # (stream, data; None at its end)
        self._open = 2
        for stream, pipe in ((1, self._proc.stdout), (2, self._proc.stderr)):
            threading.Thread(target=self._reader, args=(stream, pipe), daemon=True).start()
        self.status: int | None = None
        self.rusage = None

    def _reader(self, stream: int, pipe: BufferedIOBase) -> None:
        for chunk in iter(lambda: pipe.read1(65536), b""):
            self._q.put((stream, chunk))
        self._q.put((stream, None))

    def pump(self, sink: Callable[[int, bytes], object], timeout: float) -> None:
        try:
            stream, data = self._q.get(timeout=max(0.0, min(timeout, 0.05)))
            while True:
                if data is None:
                    self._open -= 1
                else:
                    sink(stream, data)
                stream, data = self._q.get_nowait()
        except queue.Empty:
            pass
        if self.status is None:
            self.status = self._proc.poll()

    @property
    def exited(self) -> bool:
        return self.status is not None

    @property
    def output_open(self) -> bool:
        return self._open > 0

    def close_output(self) -> None:
        self._open = 0

    def exit_code(self) -> tuple[int, int | None]:
        return (self.status or 0) & 0xFFFFFFFF if (self.status or 0) >= 0 else 1, None

    def rusage_cpu(self) -> float | None:
        """CPU seconds of every process the job has held, ended ones included (None: no job)."""
        try:
            return self._job.cpu_seconds() if self._job else None
        except OSError:
            return None

    def peak_memory(self) -> int | None:
        """The job's peak committed memory, all its processes together (None: no job)."""
        try:
            return self._job.peak_memory() if self._job else None
        except OSError:
            return None

    def forward(self, sig: int) -> None:
        try:
            self._proc.send_signal(CTRL_BREAK_EVENT)
        except OSError:
            pass

    def terminate_tree(self, descendants: Iterable[Signallable]) -> None:
        """Ctrl-Break to the bot's console group, WM_CLOSE to the windows of its processes."""
        from . import winclose

        self.forward(signal.SIGTERM)
        winclose.close_windows(self._tree_pids(descendants))

    def _tree_pids(self, descendants: Iterable[Signallable]) -> set[int]:
        """The processes of the job, grandchildren of an ended parent included; without a job,
        the bot and the descendants last seen."""
        if self._job is not None:
            try:
                return set(self._job.pids())
            except OSError:
                pass
        return {self.pid, *(proc.pid for proc in descendants)}

    def kill_tree(self, descendants: Iterable[Signallable]) -> None:
        if self._job is not None:
            try:
                self._job.terminate()
                return
            except OSError:
                pass  # as without a job
        self._kill_seen(descendants)

    def _kill_seen(self, descendants: Iterable[Signallable]) -> None:
        import psutil  # type: ignore[import-untyped]  # psutil ships no type hints

        try:
            procs = [psutil.Process(self.pid), *descendants]
        except psutil.Error:
            procs = list(descendants)
        for proc in procs:
            try:
                proc.kill()
            except psutil.Error:
                pass

    def group_alive(self) -> bool:
        return self._proc.poll() is None


def install_forwarding(handler: Callable[[int], object]) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGBREAK", None)):
        if sig is not None:
            signal.signal(sig, lambda signum, _frame: handler(signum))


def spawn_detached(argv: list[str], cwd: str | None = None,
                   popen: Callable[..., subprocess.Popen[bytes]] = subprocess.Popen) -> subprocess.Popen[bytes]:
    """Start a helper that outlives us, in `cwd`, with no console or inherited output. It breaks
    away from the job we run in (Task Scheduler and CI runners end theirs, and all in it, when
    the task ends); a job that forbids breakaway refuses with ERROR_ACCESS_DENIED: then it is
    started inside it, as the job's owner wants."""
    def start(flags: int) -> subprocess.Popen[bytes]:
        return popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     close_fds=True, cwd=cwd, creationflags=flags)

    try:
        return start(DETACHED_FLAGS | CREATE_BREAKAWAY_FROM_JOB)
    except OSError as exc:
        if getattr(exc, "winerror", None) != ERROR_ACCESS_DENIED:
            raise
    return start(DETACHED_FLAGS)


def lock_exclusive(path: str) -> IO[bytes] | None:
    import msvcrt

    f = open(path, "a+b")
    try:
        f.seek(0)
        msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
    except OSError:
        f.close()
        return None
    return f


def output_code_pages() -> tuple[int, ...]:
    """The code pages redirected programs write in, most likely first: the console's output code
    page (0 without a console), the OEM one (what a new console starts with), the ANSI one."""
    import ctypes

    kernel32 = ctypes.WinDLL("kernel32")
    return kernel32.GetConsoleOutputCP(), kernel32.GetOEMCP(), kernel32.GetACP()


def user_state_dir() -> str:
    base = os.environ.get("LOCALAPPDATA") or os.path.join(os.path.expanduser("~"), "AppData", "Local")
    return os.path.join(base, "botwatch")


# Windows: files and folders inherit the ACLs of where they are made (a user's %LOCALAPPDATA%
# is private to that user); botwatch leaves ACLs alone. These keep the POSIX helpers' shapes.


def private_dir(path: str) -> None:
    os.makedirs(path, exist_ok=True)


def create_private(path: str) -> None:
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


def narrow_private(path: str) -> None:
    """Nothing to narrow: the ACLs decide."""
