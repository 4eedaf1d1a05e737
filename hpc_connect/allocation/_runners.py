"""How an allocation starts its jobs: ``JobRunner``, and ``StepRunner`` (a scheduler step
launcher per job, e.g. ``srun --jobid=<holder> --exact``). The agent's runner is in
``_agent_client.py``."""

from __future__ import annotations

import abc
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, ClassVar

from ..errors import AllocationError
from ._protocol import EndReason

if TYPE_CHECKING:
    from ._base import Allocation
    from ._packing import AllocatedProcess

#: ``holder_state()``: whether the holder job runs, and why it ended (None while it lives)
HolderState = Callable[[], tuple[bool, str | None]]


class JobRunner(abc.ABC):
    """One way of starting, following and stopping the jobs of ``allocation``."""

    def __init__(self, allocation: Allocation) -> None:
        self.allocation = allocation

    @abc.abstractmethod
    def holder_command(self) -> str:
        """The holder job's command line (what keeps the allocation, and maybe runs jobs)."""

    @abc.abstractmethod
    def wait_started(self, holder_state: HolderState) -> None:
        """Return once the allocation can run jobs; raise ``AllocationError`` if it never
        will (``holder_state()`` says why the holder ended)."""

    @abc.abstractmethod
    def start(self, process: AllocatedProcess) -> None:
        """Start ``process``'s script in the allocation."""

    @abc.abstractmethod
    def ended(self, process: AllocatedProcess) -> tuple[int, EndReason] | None:
        """``(status, why)`` once ``process`` has ended, else None."""

    @abc.abstractmethod
    def stop(self, running: Sequence[AllocatedProcess]) -> None:
        """End these running jobs; return once they have ended."""

    def check(self, running: Sequence[AllocatedProcess]) -> None:  # noqa: B027
        """Called before each reaping pass while jobs run (e.g. a liveness check)."""


class StepRunner(JobRunner):
    """Each job is a local step-launcher process (``allocation.step_argv``) whose exit
    status is the job's: no scheduler query per job."""

    #: longest pause between looks at a holder job that is still pending
    wait_interval: ClassVar[float] = 2.0
    #: seconds a cancelled launcher gets to end its step before it is killed
    cancel_grace: ClassVar[float] = 15.0

    def __init__(self, allocation: Allocation) -> None:
        super().__init__(allocation)
        self.popens: dict[int, subprocess.Popen[bytes]] = {}

    def holder_command(self) -> str:
        return "exec sleep 2147483647  # the allocation's steps run beside it until released"

    def wait_started(self, holder_state: HolderState) -> None:
        delay = 0.1
        while True:
            running, problem = holder_state()
            if problem:
                raise AllocationError(f"allocation {self.allocation.jobid}: {problem} "
                                      "before it ran")
            if running:
                return
            time.sleep(delay)
            delay = min(delay * 2, self.wait_interval)

    def start(self, process: AllocatedProcess) -> None:
        argv = self.allocation.step_argv(process.spec, process.files)
        with open(process.launcher_log, "wb") as log:
            self.popens[id(process)] = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=self.allocation.step_env(), start_new_session=True)

    def ended(self, process: AllocatedProcess) -> tuple[int, EndReason] | None:
        rc = self.popens[id(process)].poll()
        if rc is None:
            return None
        del self.popens[id(process)]
        if rc == 0:
            return 0, EndReason.EXIT
        if self.allocation.expired():
            return rc, EndReason.ALLOCATION_ENDED
        try:
            said = process.launcher_log.read_text(errors="replace")
        except OSError:
            said = ""
        return rc, self.allocation.step_end_reason(said)

    def stop(self, running: Sequence[AllocatedProcess]) -> None:
        """SIGTERM to their launchers, SIGKILL after ``cancel_grace``."""
        popens = [self.popens.pop(id(p)) for p in running if id(p) in self.popens]
        for popen in popens:
            with contextlib.suppress(ProcessLookupError):
                popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.cancel_grace
        for popen in popens:
            try:
                popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(popen.pid, signal.SIGKILL)
                popen.wait()
