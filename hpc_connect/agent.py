"""The allocation agent: runs jobs inside an allocation without a scheduler call per job.

An allocation's holder job runs ``python -m hpc_connect.agent SPOOL``. The client
(``agent_backend.AgentBackend``) and the agent talk only through files in the private
folder SPOOL, so a job costs the scheduler nothing:

- ``<key>.req``: written by the client (atomically): JSON ``{"argv", "cwd", "output",
  "error", "qtime"}``. The agent renames it ``<key>.run`` and starts ``argv`` in a
  session of its own, its output and error appended to the named files.
- ``<key>.cancel``: written by the client. The agent ends that job's process group
  (TERM, then KILL after ``GRACE`` seconds; the job script's supervisor ends the rest).
- ``<key>.end``: written by the agent (atomically) when the job has ended: JSON
  ``{"rc": <exit status, -N for signal N>, "why": "exit" | "cancelled" | "time-limit" |
  "allocation-ended"}``.
- ``agent.alive``: touched every ``HEARTBEAT`` seconds while the agent runs.

On SIGTERM or SIGINT (the holder is cancelled or reaches its time limit) the handler
only records the signal; the loop ends every job (``allocation-ended``) and exits.
The client does the bookkeeping of CPUs: the agent runs what it is given.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

#: seconds between looks at the spool folder and the jobs
TICK = 0.05
#: seconds between touches of ``agent.alive``
HEARTBEAT = 2.0
#: seconds a signalled job gets before it is killed
GRACE = 10.0
ALIVE = "agent.alive"


def write_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` (0600) so a reader never sees it half-written."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None if it is missing or not (yet) an object."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd) as fh:
        try:
            data = json.load(fh)
        except ValueError:
            return None
    return data if isinstance(data, dict) else None


class Job:
    """One running job of the agent."""

    def __init__(self, key: str, popen: subprocess.Popen[bytes], qtime: float | None) -> None:
        self.key = key
        self.popen = popen
        self.deadline = None if not qtime else time.monotonic() + qtime
        self.why = "exit"
        self.kill_at: float | None = None

    def signal(self, why: str) -> None:
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
            job.signal("allocation-ended")
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
            requests = sorted(e.name[:-4] for e in entries if e.name.endswith(".req"))
        for key in requests:
            self.start(key)
        for key, job in self.jobs.items():
            if (self.spool / f"{key}.cancel").exists():
                job.signal("cancelled")
            elif job.deadline is not None and now >= job.deadline:
                job.signal("time-limit")
        self.reap()

    def start(self, key: str) -> None:
        request = self.spool / f"{key}.req"
        data = read_json(request)
        running = self.spool / f"{key}.run"
        with contextlib.suppress(OSError):
            os.replace(request, running)
        if data is None:
            write_atomic(self.spool / f"{key}.end", {"rc": 127, "why": "bad-request"})
            return
        if (self.spool / f"{key}.cancel").exists():
            write_atomic(self.spool / f"{key}.end", {"rc": -15, "why": "cancelled"})
            return
        try:
            with open(data["output"], "ab") as out, open(data["error"], "ab") as err:
                popen = subprocess.Popen(
                    [str(a) for a in data["argv"]], cwd=data["cwd"], stdin=subprocess.DEVNULL,
                    env=self.env,
                    stdout=out, stderr=subprocess.STDOUT if data["error"] == data["output"]
                    else err, start_new_session=True)
        except (OSError, KeyError, TypeError, ValueError) as exc:
            write_atomic(self.spool / f"{key}.end",
                         {"rc": 127, "why": "exit", "error": f"could not start: {exc}"})
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
            write_atomic(self.spool / f"{key}.end", {"rc": rc, "why": job.why})
            del self.jobs[key]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not Path(args[0]).is_dir():
        print("usage: python -m hpc_connect.agent SPOOL_FOLDER", file=sys.stderr)
        return 2
    return Agent(Path(args[0])).run()


if __name__ == "__main__":
    sys.exit(main())
