"""``HPCProcess``: a submitted job, and ``JobState``, where it is in its life."""

from __future__ import annotations

import enum
import signal
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .backend import HPCBackend
    from .job import JobSpec
    from .usage import Usage


#: the reason of every job cancelled through hpc_connect
CANCELLED_BY_USER = "cancelled by user"


def signal_reason(returncode: int) -> str:
    """Words for a process status: 'exit code 3' or 'killed by signal 9 (SIGKILL)'."""
    if returncode < 0:
        return f"killed by signal {-returncode} ({_signame(-returncode)})"
    if 128 < returncode < 128 + 65:
        return f"exit code {returncode} (signal {returncode - 128}, {_signame(returncode - 128)})"
    return f"exit code {returncode}"


def _signame(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class JobState(enum.Enum):
    """The life of a job. The last five are final."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed-out"
    LOST = "lost"

    @property
    def is_final(self) -> bool:
        return self not in (JobState.PENDING, JobState.RUNNING)


class HPCProcess:
    """A job handed to a backend.

    A subclass must provide only ``jobid``, ``returncode`` (``None`` until the job is
    final), ``poll()`` (refresh and return ``returncode``) and ``cancel()``; it need not
    call ``HPCProcess.__init__``. Every other member (``state``, ``done``, ``reason``,
    ``name``, ``wait``) has a default built on those. The built-in processes refresh
    through their backend, so many processes share one scheduler query.
    """

    jobid: str = ""
    returncode: int | None = None
    spec: JobSpec | None = None
    #: when it was submitted and when it started running (epoch seconds; -1: not known),
    #: as the second generation has them
    submitted: float = -1.0
    started: float = -1.0

    def __init__(self, backend: HPCBackend, spec: JobSpec, jobid: str) -> None:
        self.backend = backend
        self.spec = spec
        self.jobid = jobid
        self.state = JobState.PENDING
        self.returncode = None
        self.reason = ""
        self.submitted_at = time.monotonic()
        self.submitted = time.time()

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.name!r} jobid={getattr(self, 'jobid', '?')} "
            f"state={self.state.value} returncode={self.returncode}>"
        )

    @property
    def name(self) -> str:
        explicit = self.__dict__.get("_name")
        if explicit is not None:
            return str(explicit)
        return self.spec.name if self.spec is not None else str(getattr(self, "jobid", ""))

    @name.setter
    def name(self, value: str) -> None:
        self.__dict__["_name"] = value

    @property
    def state(self) -> JobState:
        """The recorded state; for a process that records none, derived from ``returncode``."""
        recorded = self.__dict__.get("_state")
        if recorded is not None:
            return recorded  # type: ignore[no-any-return]
        rc = self.returncode
        if rc is None:
            return JobState.RUNNING
        if self.__dict__.get("_cancelled"):
            return JobState.CANCELLED
        return JobState.COMPLETED if rc == 0 else JobState.FAILED

    @state.setter
    def state(self, value: JobState) -> None:
        self.__dict__["_state"] = value

    @property
    def reason(self) -> str:
        """Why the job did not complete, in words ("" while running or when it completed)."""
        recorded = self.__dict__.get("_reason")
        if recorded is not None:
            return str(recorded)
        state = self.state
        if state is JobState.CANCELLED:
            return CANCELLED_BY_USER
        rc = self.returncode
        return signal_reason(rc) if state is JobState.FAILED and rc is not None else ""

    @reason.setter
    def reason(self, value: str) -> None:
        self.__dict__["_reason"] = value

    @property
    def done(self) -> bool:
        return self.state.is_final

    @property
    def usage(self) -> Usage | None:
        """Resources the job used, as its script recorded them; None if unknown."""
        return None

    def poll(self) -> int | None:
        """Refresh the state and return ``returncode`` (``None`` while not final)."""
        if not self.done:
            self.backend.poll_many([self])
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Block until the job is final and return ``returncode``.

        Raises ``TimeoutError`` after ``timeout`` seconds; the job is left alone.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        backend = self.__dict__.get("backend")
        interval = float(getattr(backend, "polling_interval", 0.5))
        delay = min(0.05, interval)
        while (rc := self.poll()) is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {self.jobid} ({self.name!r}) still {self.state.value}")
            pause = delay if deadline is None else min(delay, max(0.0, deadline - time.monotonic()))
            time.sleep(pause)
            delay = min(delay * 2, interval)
        return rc

    def cancel(self) -> None:
        """Cancel the job (and, where the backend can, every process it started)."""
        if not self.done:
            self.backend.cancel_many([self])

    @property
    def completion_info(self) -> dict[str, object]:
        """What is known of the job's end, as the second generation's futures report it
        (``state`` in the schedulers' words: COMPLETED, FAILED, CANCELLED, TIMEOUT, LOST)."""
        recorded = self.__dict__.get("_completion_info")
        if recorded is not None:
            return dict(recorded)
        if not self.done:
            return {}
        return {"jobid": self.jobid, "name": self.name, "state": _WORDS[self.state],
                "returncode": self.returncode, "reason": self.reason}

    @completion_info.setter
    def completion_info(self, value: dict[str, object] | None) -> None:
        self.__dict__["_completion_info"] = value

    def set_exit(self, returncode: int) -> None:
        """Final from a process status: completed for 0, else failed with its reason."""
        if returncode == 0:
            self.set_state(JobState.COMPLETED, 0)
        else:
            self.set_state(JobState.FAILED, returncode, signal_reason(returncode))

    def set_cancelled(self, returncode: int = -15) -> None:
        """Final: cancelled through hpc_connect."""
        self.set_state(JobState.CANCELLED, returncode, CANCELLED_BY_USER)

    def set_state(self, state: JobState, returncode: int | None = None, reason: str = "") -> None:
        """Record a state reported by the backend; a final state is never changed again."""
        if self.done:
            return
        self.state = state
        if state is JobState.RUNNING and self.started < 0:
            self.started = time.time()
        if state.is_final:
            if returncode is None:
                returncode = 0 if state is JobState.COMPLETED else 1
            self.returncode = returncode
            self.reason = reason


_WORDS = {JobState.PENDING: "PENDING", JobState.RUNNING: "RUNNING",
          JobState.COMPLETED: "COMPLETED", JobState.FAILED: "FAILED",
          JobState.CANCELLED: "CANCELLED", JobState.TIMED_OUT: "TIMEOUT", JobState.LOST: "LOST"}
