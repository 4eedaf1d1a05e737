"""The ``flux`` backend: ``flux.sh``'s jobs (the same script, options, directives and
status files) submitted, watched and cancelled through Flux's Python API, in this process.

Submit: the ``flux batch`` arguments ``flux.sh`` would run are turned into a jobspec by
Flux's own ``flux batch`` code (``flux.cli.batch.BatchCmd``: directives, submit flags and
defaults as the command has them), then submitted with one RPC. Status: ONE
``job-list.list`` RPC per cycle, whatever the number of live jobs: this user's active jobs
and those that ended since the last answer (``since``, less ``since_margin`` for clock
skew); a job it leaves out (attached after it ended long ago) is asked for by id once,
as ``finished_status``. Cancel: one ``job-manager.raise`` RPC per job, all in flight
together. No thread per job: the futures' one poller per backend calls ``poll_many``.
Handles are not thread-safe: each thread (and a forked child) opens its own.
Bindings: ``_flux_bindings`` (one-line error naming what to install, or ``flux.sh``).
"""

from __future__ import annotations

import argparse
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, NoReturn

from ..batch import SchedulerStatus
from ..errors import SchedulerError
from . import _flux_bindings
from .flux import FluxBackend, parse_id, statuses_of

log = logging.getLogger("hpc_connect")

#: what a status cycle asks job-list for (with ``id``; ``returncode`` comes from ``waitstatus``)
STATUS_ATTRS = ["state", "result", "waitstatus", "exception_occurred",
                "exception_type", "exception_note"]


def _refuse(message: str) -> NoReturn:
    """``flux batch``'s argument errors as an exception (argparse would exit)."""
    raise ValueError(f"flux batch: {message}")


def _words(exc: BaseException) -> str:
    return (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)) or repr(exc)


class FluxAPIBackend(FluxBackend):
    """Flux through its Python bindings (``flux.job``), with ``flux.sh``'s job mechanism."""

    name: ClassVar[str] = "flux"
    aliases: ClassVar[tuple[str, ...]] = ("flux.py", "flux:py")
    #: seconds subtracted from each cycle's ``since`` (clocks of this host and rank 0)
    since_margin: ClassVar[float] = 300.0

    def __init__(self, **options: Any) -> None:
        self.flux = _flux_bindings.load()
        super().__init__(**options)
        self._local = threading.local()
        self._since = time.time() - self.since_margin

    @classmethod
    def unavailable(cls) -> str | None:
        return _flux_bindings.problem()

    def handle(self) -> Any:
        """This thread's handle on the instance (``FLUX_URI``), opened on first use."""
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            local.handle = self.flux.Flux()
            local.pid = os.getpid()
        return local.handle

    def submit_once(self, argv: Sequence[str],
                    env: Mapping[str, str] | None) -> tuple[str | None, str]:
        """``argv`` (``flux batch ARGS SCRIPT``) as ``flux batch`` would submit it."""
        self.queries += 1
        try:
            command = self.flux.cli.batch.BatchCmd("flux batch")
            command.parser.error = _refuse
            command.argv = list(argv[2:])
            args: argparse.Namespace = command.parser.parse_args(command.argv)
            command.script, args = command.process_script(args)
            jobspec = command.jobspec_create(args)
            environment = dict(jobspec.environment or {})
            environment.pop("HPC_CONNECT_JOB_TOKEN", None)  # not this job's to end
            jobspec.environment = environment
            command.flux_handle = self.handle()
            jobid = command.submit(args, jobspec)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            return None, _words(exc)
        return str(self.flux.job.JobID(jobid).f58), ""

    def query_status(self, jobids: Sequence[str]) -> dict[str, SchedulerStatus] | None:
        """One ``job-list.list`` RPC: active jobs and those ended since the last answer."""
        self.queries += 1
        asked = time.time()
        try:
            jobs = self.flux.job.list.job_list(self.handle(), max_entries=0,
                                               attrs=STATUS_ATTRS, since=self._since).get_jobs()
            found = self._as_dicts(jobs)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            self._warn_unchanged(exc)
            return None
        self._since = asked - self.since_margin
        return found

    def finished_status(self, jobids: Sequence[str]) -> dict[str, SchedulerStatus]:
        """Jobs the last listing left out, by id (``job-list.list-id``), all in flight
        together; ids flux does not know are left out."""
        self.queries += 1
        try:
            handle = self.handle()
            rpcs = [self.flux.job.list.job_list_id(handle, parse_id(j), attrs=STATUS_ATTRS)
                    for j in jobids]
        except (OSError, ValueError) as exc:
            self._warn_unchanged(exc)
            return {}
        jobs = []
        for rpc in rpcs:
            try:
                jobs.append(rpc.get_job())
            except OSError:  # ENOENT: flux does not know it
                continue
        return self._as_dicts(jobs)

    def _as_dicts(self, jobs: list[dict[str, Any]]) -> dict[str, SchedulerStatus]:
        """Raw job-list entries in ``flux jobs --json``'s form, as statuses."""
        info = self.flux.job.info.JobInfo
        return statuses_of(info(job).to_dict() for job in jobs)

    def _warn_unchanged(self, exc: BaseException) -> None:
        log.warning("%s status query failed, states unchanged: %s", self.name, _words(exc))

    def listing_named(self, name: str) -> list[dict[str, Any]]:
        self.queries += 1
        try:
            jobs = self.flux.job.list.job_list(self.handle(), max_entries=0, attrs=["all"],
                                               name=name).get_jobs()
            info = self.flux.job.info.JobInfo
            return [info(job).to_dict() for job in jobs]
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise SchedulerError(f"flux job-list failed: {_words(exc)}") from None

    def cancel_jobs(self, jobids: Sequence[str]) -> str:
        """One cancel RPC per job, all in flight together; complaints joined."""
        self.queries += 1
        try:
            handle = self.handle()
            futures = [(j, self.flux.job.cancel_async(handle, parse_id(j))) for j in jobids]
        except (OSError, ValueError) as exc:
            return _words(exc)
        problems = []
        for jobid, future in futures:
            try:
                future.get()
            except OSError as exc:  # e.g. the job has ended already
                problems.append(f"{jobid}: {_words(exc)}")
        return "; ".join(problems)
