"""Windows job objects: the bot and every process it starts, however deep, as one unit.

Windows does not re-parent: once a process exits, a walk down from the bot no longer finds the
processes it started. A job keeps them all, ends them all at once, and accounts for the CPU time
and peak memory of all of them, those that already ended included.

The structures and the reading of them are plain ctypes, importable anywhere (the tests read
them on Linux); kernel32 is loaded on first use, on Windows only.
"""

from __future__ import annotations

import ctypes
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (the wrapper's path)
if TYPE_CHECKING:
    from typing import Any, Protocol

    class JobApi(Protocol):
        """The kernel32 calls a Job makes; each raises OSError when the call fails."""

        def create_job(self) -> int: ...
        def assign(self, job: int, pid: int) -> None: ...
        def set_information(self, job: int, info_class: int, data: bytes) -> None: ...
        def query(self, job: int, info_class: int, size: int) -> bytes: ...
        def terminate(self, job: int, exit_code: int) -> None: ...
        def close(self, handle: int) -> None: ...

# the information classes of QueryInformationJobObject and SetInformationJobObject
BASIC_ACCOUNTING = 1  # JobObjectBasicAccountingInformation
BASIC_PROCESS_IDS = 3  # JobObjectBasicProcessIdList
EXTENDED_LIMITS = 9  # JobObjectExtendedLimitInformation

JOB_OBJECT_LIMIT_BREAKAWAY_OK = 0x00000800
ERROR_MORE_DATA = 234
TICKS_PER_SECOND = 10_000_000  # job times count 100-nanosecond ticks
KILLED_EXIT_CODE = 1  # what TerminateJobObject gives every process of the job: an ordinary failure


class BasicAccounting(ctypes.Structure):
    """JOBOBJECT_BASIC_ACCOUNTING_INFORMATION."""

    _fields_ = [("TotalUserTime", ctypes.c_int64), ("TotalKernelTime", ctypes.c_int64),
                ("ThisPeriodTotalUserTime", ctypes.c_int64), ("ThisPeriodTotalKernelTime", ctypes.c_int64),
                ("TotalPageFaultCount", ctypes.c_uint32), ("TotalProcesses", ctypes.c_uint32),
                ("ActiveProcesses", ctypes.c_uint32), ("TotalTerminatedProcesses", ctypes.c_uint32)]


class BasicLimits(ctypes.Structure):
    """JOBOBJECT_BASIC_LIMIT_INFORMATION (SIZE_T and ULONG_PTR are pointer-sized: c_size_t)."""

    _fields_ = [("PerProcessUserTimeLimit", ctypes.c_int64), ("PerJobUserTimeLimit", ctypes.c_int64),
                ("LimitFlags", ctypes.c_uint32), ("MinimumWorkingSetSize", ctypes.c_size_t),
                ("MaximumWorkingSetSize", ctypes.c_size_t), ("ActiveProcessLimit", ctypes.c_uint32),
                ("Affinity", ctypes.c_size_t), ("PriorityClass", ctypes.c_uint32),
                ("SchedulingClass", ctypes.c_uint32)]


class IoCounters(ctypes.Structure):
    """IO_COUNTERS."""

    _fields_ = [(name, ctypes.c_uint64) for name in (
        "ReadOperationCount", "WriteOperationCount", "OtherOperationCount", "ReadTransferCount",
        "WriteTransferCount", "OtherTransferCount")]


class ExtendedLimits(ctypes.Structure):
    """JOBOBJECT_EXTENDED_LIMIT_INFORMATION."""

    _fields_ = [("BasicLimitInformation", BasicLimits), ("IoInfo", IoCounters),
                ("ProcessMemoryLimit", ctypes.c_size_t), ("JobMemoryLimit", ctypes.c_size_t),
                ("PeakProcessMemoryUsed", ctypes.c_size_t), ("PeakJobMemoryUsed", ctypes.c_size_t)]


class ProcessIdsHead(ctypes.Structure):
    """The fixed part of JOBOBJECT_BASIC_PROCESS_ID_LIST; the ULONG_PTR ids follow it."""

    _fields_ = [("NumberOfAssignedProcesses", ctypes.c_uint32), ("NumberOfProcessIdsInList", ctypes.c_uint32)]


# -- reading the structures (pure) -------------------------------------------------------------

def cpu_seconds_of(raw: bytes) -> float:
    """User plus kernel CPU seconds of every process the job has had, ended ones included."""
    info = BasicAccounting.from_buffer_copy(raw)
    return int(info.TotalUserTime + info.TotalKernelTime) / TICKS_PER_SECOND


def peak_memory_of(raw: bytes) -> int:
    """The job's peak committed memory in bytes: all its processes together, at their peak."""
    return int(ExtendedLimits.from_buffer_copy(raw).PeakJobMemoryUsed)


def process_ids_of(raw: bytes) -> tuple[list[int], int]:
    """(the process ids in the list, how many processes the job has): more than listed when
    the buffer was too small for them all."""
    head = ProcessIdsHead.from_buffer_copy(raw)
    room = (len(raw) - ctypes.sizeof(head)) // ctypes.sizeof(ctypes.c_size_t)
    listed = min(head.NumberOfProcessIdsInList, room)
    ids = (ctypes.c_size_t * listed).from_buffer_copy(raw, ctypes.sizeof(head))
    return list(ids), int(head.NumberOfAssignedProcesses)


def breakaway_limits() -> bytes:
    """The job's only limit: its processes may start others outside it with
    CREATE_BREAKAWAY_FROM_JOB: the deliverer a bot using the SDK starts must outlive a timeout,
    and a program that puts its children in a job of its own with UI restrictions (such jobs do
    not nest) must be able to. Only a process started with that flag leaves; the tree stays in.

    Not JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE: the job's handle closes with the wrapper, and a
    wrapper killed or crashed must not take the bot with it (on POSIX the bot outlives it too);
    monitoring never makes a bot fail. The job ends the tree only when the wrapper says so."""
    limits = ExtendedLimits()
    limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_BREAKAWAY_OK
    return bytes(limits)


# -- a job --------------------------------------------------------------------------------------

class Job:
    """A job object holding the bot's process tree."""

    def __init__(self, api: JobApi, handle: int) -> None:
        self._api, self.handle = api, handle

    def add(self, pid: int) -> None:
        self._api.assign(self.handle, pid)

    def cpu_seconds(self) -> float:
        return cpu_seconds_of(self._api.query(self.handle, BASIC_ACCOUNTING, ctypes.sizeof(BasicAccounting)))

    def peak_memory(self) -> int:
        return peak_memory_of(self._api.query(self.handle, EXTENDED_LIMITS, ctypes.sizeof(ExtendedLimits)))

    def pids(self) -> list[int]:
        """The ids of the processes in the job now (asked again, with more room, while they do
        not all fit: the job may grow between two calls)."""
        room, ids = 64, None
        for _attempt in range(6):
            size = ctypes.sizeof(ProcessIdsHead) + room * ctypes.sizeof(ctypes.c_size_t)
            try:
                ids, assigned = process_ids_of(self._api.query(self.handle, BASIC_PROCESS_IDS, size))
            except OSError as exc:
                if getattr(exc, "winerror", None) != ERROR_MORE_DATA:
                    raise
                room *= 4
                continue
            if assigned <= len(ids):
                break
            room = max(room * 2, assigned + 16)
        if ids is None:
            raise OSError("the job's process list does not fit")
        return ids

    def terminate(self) -> None:
        """End every process of the job (TerminateJobObject)."""
        self._api.terminate(self.handle, KILLED_EXIT_CODE)

    def close(self) -> None:
        self._api.close(self.handle)


def contain(pid: int, api: JobApi | None = None) -> tuple[Job | None, str | None]:
    """Put the process `pid`, just started, in a new job: (the job, None), or (None, why not).

    Assignment fails on Windows before 8 when the process is already in a job (Task Scheduler,
    CI runners and RunAs put theirs in one) and on later versions when a job in the chain sets
    UI restrictions. Never raises: without a job the bot runs as before."""
    try:
        api = api or Kernel32()
        job = Job(api, api.create_job())
    except Exception as exc:
        return None, f"cannot create a job object ({exc})"
    try:
        api.set_information(job.handle, EXTENDED_LIMITS, breakaway_limits())
    except Exception:
        pass  # a job without breakaway still holds the tree
    try:
        job.add(pid)
    except Exception as exc:
        try:
            job.close()
        except Exception:
            pass
        return None, f"cannot put the bot in a job object ({exc})"
    return job, None


# -- kernel32 (Windows only) ----------------------------------------------------------------------

PROCESS_SET_QUOTA = 0x0100
PROCESS_TERMINATE = 0x0001


class Kernel32:
    """The job object calls of kernel32, each raising OSError (with its winerror) on failure."""

    def __init__(self) -> None:
        self._dll = _load_kernel32()

    def _ok(self, result: Any) -> Any:
        if not result:
            raise _last_error()
        return result

    def create_job(self) -> int:
        return int(self._ok(self._dll.CreateJobObjectW(None, None)))

    def assign(self, job: int, pid: int) -> None:
        # A handle of our own with just the rights AssignProcessToJobObject needs; the pid cannot
        # be reused meanwhile: subprocess holds a handle of the process
        process = self._ok(self._dll.OpenProcess(PROCESS_SET_QUOTA | PROCESS_TERMINATE, False, pid))
        try:
            self._ok(self._dll.AssignProcessToJobObject(job, process))
        finally:
            self._dll.CloseHandle(process)

    def set_information(self, job: int, info_class: int, data: bytes) -> None:
        buf = ctypes.create_string_buffer(data, len(data))
        self._ok(self._dll.SetInformationJobObject(job, info_class, buf, len(data)))

    def query(self, job: int, info_class: int, size: int) -> bytes:
        buf = ctypes.create_string_buffer(size)
        self._ok(self._dll.QueryInformationJobObject(job, info_class, buf, size, None))
        return buf.raw

    def terminate(self, job: int, exit_code: int) -> None:
        self._ok(self._dll.TerminateJobObject(job, exit_code))

    def close(self, handle: int) -> None:
        self._dll.CloseHandle(handle)


def _load_kernel32() -> Any:
    if sys.platform != "win32":
        raise OSError("job objects exist on Windows only")
    from ctypes import wintypes

    dll = ctypes.WinDLL("kernel32", use_last_error=True)
    signatures = {
        "CreateJobObjectW": (wintypes.HANDLE, [ctypes.c_void_p, wintypes.LPCWSTR]),
        "OpenProcess": (wintypes.HANDLE, [wintypes.DWORD, wintypes.BOOL, wintypes.DWORD]),
        "AssignProcessToJobObject": (wintypes.BOOL, [wintypes.HANDLE, wintypes.HANDLE]),
        "SetInformationJobObject": (wintypes.BOOL, [wintypes.HANDLE, ctypes.c_int, ctypes.c_void_p,
                                                    wintypes.DWORD]),
        "QueryInformationJobObject": (wintypes.BOOL, [wintypes.HANDLE, ctypes.c_int, ctypes.c_void_p,
                                                      wintypes.DWORD, ctypes.POINTER(wintypes.DWORD)]),
        "TerminateJobObject": (wintypes.BOOL, [wintypes.HANDLE, wintypes.UINT]),
        "CloseHandle": (wintypes.BOOL, [wintypes.HANDLE]),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(dll, name)
        function.restype, function.argtypes = restype, argtypes
    return dll


def _last_error() -> OSError:
    if sys.platform != "win32":
        return OSError("job objects exist on Windows only")
    return ctypes.WinError(ctypes.get_last_error())
