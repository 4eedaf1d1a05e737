"""The allocation agent: runs jobs inside an allocation without a scheduler call per job.

An allocation's holder job runs ``python -m hpc_connect.allocation.agent SPOOL``. The
client (``_agent_client.AgentRunner``) and the agent talk only through files in the
private folder SPOOL (``_protocol.py``), so a job costs the scheduler nothing. Each job
starts in a session of its own, its output and error appended to the named files; a
cancel ends its process group (TERM, then KILL after ``GRACE`` seconds; the job
script's supervisor ends the rest).

On SIGTERM or SIGINT (the holder is cancelled or reaches its time limit) the handler
only records the signal; the loop ends every job (``allocation-ended``) and exits.
The client does the bookkeeping of CPUs: the agent runs what it is given.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ._protocol import (
    ALIVE,
    CANCEL,
    GRACE,
    HEARTBEAT,
    REQUEST,
    RUNNING,
    EndReason,
    read_json,
    write_end,
)

#: seconds between looks at the spool folder and the jobs
TICK = 0.05


class Job:
    """One running job of the agent."""

    def __init__(self, key: str, popen: subprocess.Popen[bytes], qtime: float | None) -> None:
        self.key = key
        self.popen = popen
        self.deadline = None if not qtime else time.monotonic() + qtime
        self.why = EndReason.EXIT
        self.kill_at: float | None = None

    def signal(self, why: EndReason) -> None:
        """TERM the job's process group now, KILL it after ``GRACE`` seconds."""
        if self.kill_at is None:
            self.why = why
            self.kill_at = time.monotonic() + GRACE
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGTERM)


class Agent:
    """The loop: start requested jobs, pass on cancels, enforce time limits, report ends."""

    def __init__(self, spool: Path) -> None:
        self.spool = spool
        self.jobs: dict[str, Job] = {}
        #: the jobs' environment: ours, without the holder job's token (each job's script
        #: ends its own processes; the holder's clean-up must not kill them mid-way)
        self.env = {k: v for k, v in os.environ.items() if k != "HPC_CONNECT_JOB_TOKEN"}
        self.stop_signal = 0
        self.beat = 0.0

    def on_signal(self, signum: int, frame: object) -> None:
        self.stop_signal = signum  # only record it: the loop does the work

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)
        while not self.stop_signal:
            self.step()
            time.sleep(TICK)
        for job in self.jobs.values():
            job.signal(EndReason.ALLOCATION_ENDED)
        while self.jobs:  # bounded: every job is killed GRACE seconds after its TERM
            self.reap()
            time.sleep(TICK)
        return 0

    def step(self) -> None:
        now = time.monotonic()
        if now - self.beat >= HEARTBEAT:
            (self.spool / ALIVE).touch()
            self.beat = now
        with os.scandir(self.spool) as entries:
            requests = sorted(e.name[:-len(REQUEST)] for e in entries
                              if e.name.endswith(REQUEST))
        for key in requests:
            self.start(key)
        for key, job in self.jobs.items():
            if (self.spool / f"{key}{CANCEL}").exists():
                job.signal(EndReason.CANCELLED)
            elif job.deadline is not None and now >= job.deadline:
                job.signal(EndReason.TIME_LIMIT)
        self.reap()

    def start(self, key: str) -> None:
        request = self.spool / f"{key}{REQUEST}"
        data = read_json(request)
        with contextlib.suppress(OSError):
            os.replace(request, self.spool / f"{key}{RUNNING}")
        if data is None:
            write_end(self.spool, key, 127, EndReason.BAD_REQUEST)
            return
        if (self.spool / f"{key}{CANCEL}").exists():
            write_end(self.spool, key, -15, EndReason.CANCELLED)
            return
        try:
            with open(data["output"], "ab") as out, open(data["error"], "ab") as err:
                popen = subprocess.Popen(
                    [str(a) for a in data["argv"]], cwd=data["cwd"], stdin=subprocess.DEVNULL,
                    env=self.env,
                    stdout=out, stderr=subprocess.STDOUT if data["error"] == data["output"]
                    else err, start_new_session=True)
        except (OSError, KeyError, TypeError, ValueError) as exc:
            write_end(self.spool, key, 127, EndReason.EXIT, error=f"could not start: {exc}")
            return
        self.jobs[key] = Job(key, popen, data.get("qtime"))

    def reap(self) -> None:
        now = time.monotonic()
        for key, job in list(self.jobs.items()):
            rc = job.popen.poll()
            if rc is None:
                if job.kill_at is not None and now >= job.kill_at:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(job.popen.pid, signal.SIGKILL)
                continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(job.popen.pid, signal.SIGKILL)  # what the job left in its group
            write_end(self.spool, key, rc, job.why)
            del self.jobs[key]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not Path(args[0]).is_dir():
        print("usage: python -m hpc_connect.allocation.agent SPOOL_FOLDER", file=sys.stderr)
        return 2
    return Agent(Path(args[0])).run()


if __name__ == "__main__":
    sys.exit(main())
