"""``JobIndex``: the jobs one backend object submitted or attached, by job id.

``JobSpec.dependencies`` name jobs by id; the index tells a backend which ids are its
own and which of them have ended (an ended job satisfies an ``afterany`` dependency).
Finished jobs are kept as ids only, so a long run does not keep every process alive.
If the same id comes back (a shell pid reused), the newest job holds it.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..process import HPCProcess


class JobIndex:
    """Job id → process of a backend's own jobs; the ids of those that ended."""

    def __init__(self) -> None:
        self._jobs: dict[str, HPCProcess] = {}
        self._ended: set[str] = set()
        self._limit = 1024

    def add(self, processes: Iterable[HPCProcess]) -> None:
        for process in processes:
            self._jobs[process.jobid] = process
            self._ended.discard(process.jobid)
        if len(self._jobs) > self._limit:  # keep only ids of the finished ones
            for jobid, process in list(self._jobs.items()):
                if process.done:
                    self._ended.add(jobid)
                    del self._jobs[jobid]
            self._limit = 2 * len(self._jobs) + 1024

    def get(self, jobid: str) -> HPCProcess | None:
        """The live (or recently finished) process of ``jobid``; None if not held."""
        return self._jobs.get(jobid)

    def __contains__(self, jobid: object) -> bool:
        return jobid in self._jobs or jobid in self._ended

    def ended(self, jobid: str) -> bool:
        """True if ``jobid`` is one of ours and final (as last refreshed)."""
        process = self._jobs.get(jobid)
        return jobid in self._ended if process is None else process.done
