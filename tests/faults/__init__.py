"""Helpers of the fault-injection tests: flaky scheduler commands on PATH, Slurm queries.

``FlakyBin`` is a folder of symlinks to ``flaky.sh``: put it first on PATH and the
named commands fail on demand (``fail_next``) with Slurm's own error text, then run the
real program; every call is counted and logged (``calls``, ``successes``).
"""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from pathlib import Path

FLAKY = Path(__file__).resolve().parent / "flaky.sh"

#: what Slurm's commands print when the controller does not answer in time
SLURM_ERRORS = {
    "sbatch": "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation",
    "squeue": "slurm_load_jobs error: Socket timed out on send/recv operation",
    "scancel": "scancel: error: Kill job error on job id: Socket timed out on send/recv operation",
}
#: job states that still hold (or will hold) resources
ACTIVE = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING"}


class FlakyBin:
    """A PATH folder whose ``programs`` go through ``flaky.sh``."""

    def __init__(self, folder: Path, programs: tuple[str, ...] = ("sbatch", "squeue", "scancel")):
        self.dir = folder
        folder.mkdir(parents=True, exist_ok=True)
        for program in programs:
            link = folder / program
            if not link.exists():
                link.symlink_to(FLAKY)
            (folder / f"{program}.msg").write_text(SLURM_ERRORS.get(program, "error") + "\n")

    def only(self, program: str, text: str) -> None:
        """Count (and fail) only the calls of ``program`` whose arguments contain ``text``."""
        (self.dir / f"{program}.only").write_text(text)

    def lying(self, program: str) -> None:
        """Injected failures of ``program`` run the real program first (work done, but
        reported failed)."""
        (self.dir / f"{program}.lying").touch()

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """``base`` (default: this process's environment) with the folder first on PATH."""
        env = dict(os.environ if base is None else base)
        env["PATH"] = f"{self.dir}{os.pathsep}{env.get('PATH', '')}"
        return env

    def calls(self, program: str) -> int:
        path = self.dir / f"{program}.count"
        return int(path.read_text()) if path.exists() else 0

    def fail_next(self, program: str, count: int) -> None:
        """Make the next ``count`` calls of ``program`` fail (counted from now)."""
        (self.dir / f"{program}.fail").write_text(f"{self.calls(program) + count}\n")

    def log(self, program: str) -> list[tuple[int, int, str]]:
        """``(call number, exit status, stdout)`` of every finished call."""
        path = self.dir / f"{program}.log"
        rows = []
        for line in path.read_text().splitlines() if path.exists() else []:
            n, rc, *rest = line.split(" ", 2)
            rows.append((int(n), int(rc), (rest or [""])[0].strip()))
        return rows

    def successes(self, program: str) -> list[str]:
        """The stdout of each call that ran the real program and exited 0."""
        return [out for _, rc, out in self.log(program) if rc == 0]

    def injected(self, program: str) -> int:
        """How many calls failed on purpose."""
        return sum(1 for _, _, out in self.log(program) if out == "(injected)")


def slurm_jobs_under(folder: Path) -> list[tuple[str, str, str]]:
    """``(jobid, name, state)`` of every job squeue still shows whose work dir or script
    is under ``folder`` (finished jobs stay visible for MinJobAge, 300 s on the test
    cluster)."""
    out = subprocess.run(
        ["squeue", "--noheader", "--states=all", "--format=%i|%T|%Z|%o|%j"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    rows = []
    for line in out.stdout.splitlines():
        jobid, state, workdir, script, name = line.split("|", 4)
        if any(p == str(folder) or p.startswith(f"{folder}/") for p in (workdir, script)):
            rows.append((jobid.strip(), name, state))
    return rows


def active_jobs_under(folder: Path) -> list[tuple[str, str, str]]:
    return [row for row in slurm_jobs_under(folder) if row[2] in ACTIVE]


def duplicates(names: list[str]) -> dict[str, int]:
    """Names that occur more than once, with their counts."""
    return {name: n for name, n in Counter(names).items() if n > 1}
