"""``JobFiles``: where one job's script, output, error and exit-status files live, and
reading what the script recorded there; ``job_key``, the file-name stem of a job."""

from __future__ import annotations

from pathlib import Path

import attrs

from ..job import JobSpec
from ..jobref import JobRef
from ..usage import Usage, parse_usage
from ._owner_only import read_trusted


def safe_name(name: str, default: str = "job") -> str:
    """A file-name-safe form of a job name, at most 60 characters (the name itself is
    never interpreted)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60] or default


def job_key(number: int, name: str) -> str:
    """The file-name stem of a backend's ``number``-th job: ``00042-<safe name>``."""
    return f"{number:05d}-{safe_name(name)}"


@attrs.frozen
class JobFiles:
    """Where one job's script, output, error and exit-status files live."""

    script: Path
    output: Path
    error: Path
    exitcode: Path

    @classmethod
    def for_spec(cls, spec: JobSpec, run_dir: Path, jobkey: str) -> JobFiles:
        """Paths for ``spec``: the caller's where given, else ``<workspace or
        run_dir>/<jobkey>.*``."""
        script = (spec.scriptname or (spec.workspace or run_dir) / f"{jobkey}.sh").absolute()
        output = (spec.output or script.with_suffix(".out")).absolute()
        error = output if spec.merged_output else Path(spec.error or "").absolute()
        return cls(script, output, error, script.with_name(script.name + ".exitcode"))

    @property
    def merged(self) -> bool:
        return self.output == self.error

    def _status_text(self) -> str | None:
        """The status file's text if we wrote it (see ``private.read_trusted``)."""
        return read_trusted(self.exitcode)

    def read_exitcode(self) -> int | None:
        """The status the script recorded, or None if it has not finished."""
        text = self._status_text()
        first = text.split("\n", 1)[0].strip() if text else ""
        return int(first) if first.lstrip("-").isdigit() else None

    def read_usage(self) -> Usage | None:
        """The resource usage the script recorded, or None."""
        text = self._status_text()
        return parse_usage(text) if text else None

    @classmethod
    def for_ref(cls, ref: JobRef, script: Path | None = None) -> JobFiles:
        """The files of an attached job: its reference's script (else ``script``; without
        either, a path that does not exist) with ``.exitcode`` next to it, and its log."""
        path = ref.script or script or Path(f"/nonexistent/hpc-connect/{ref.jobid}.sh")
        output = ref.output or path.with_suffix(".out")
        return cls(path, output, output, path.with_name(path.name + ".exitcode"))
