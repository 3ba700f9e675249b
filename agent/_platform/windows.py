"""Windows: the bot runs in a new process group (so CTRL_BREAK reaches it and not us), output
is pumped by reader threads, and the tree is ended through psutil (Windows has no process
groups to signal). Not exercised by the Linux test suite; kept small on purpose."""

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

    class Signallable(Protocol):
        """A descendant process to end (a psutil.Process)."""

        def kill(self) -> None: ...

CREATE_NEW_PROCESS_GROUP = 0x00000200
DETACHED_PROCESS = 0x00000008
CREATE_NO_WINDOW = 0x08000000


class Child:
    def __init__(self, argv: list[str]) -> None:
        import shutil

        from .commands import resolve

        self._proc = subprocess.Popen(resolve(argv, shutil.which), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      creationflags=CREATE_NEW_PROCESS_GROUP)
        self.pid = self._proc.pid
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
        return None

    def forward(self, sig: int) -> None:
        try:
            self._proc.send_signal(signal.CTRL_BREAK_EVENT)
        except OSError:
            pass

    def terminate_tree(self, descendants: Iterable[Signallable]) -> None:
        self.forward(signal.SIGTERM)

    def kill_tree(self, descendants: Iterable[Signallable]) -> None:
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


def spawn_detached(argv: list[str]) -> None:
    subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     close_fds=True, creationflags=DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW)


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
