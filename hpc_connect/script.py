"""Rendering a job description into a shell script, shared by every backend.

Each command line runs through ``eval`` of a single-quoted string, so a command
cannot break the script's structure, and the script writes its own exit status
to a file next to it: exit codes are known even where the scheduler keeps no
accounting.
"""

from __future__ import annotations

import os
import shlex
import signal
from collections.abc import Sequence
from pathlib import Path

import attrs

from .job import JobSpec


@attrs.frozen
class JobFiles:
    """Where one job's script, output, error and exit-status files live."""

    script: Path
    output: Path
    error: Path
    exitcode: Path

    @classmethod
    def for_spec(cls, spec: JobSpec, run_dir: Path, jobkey: str) -> JobFiles:
        """Paths for ``spec``: the caller's where given, else ``run_dir/<jobkey>.*``."""
        script = (spec.scriptname or run_dir / f"{jobkey}.sh").absolute()
        output = (spec.output or script.with_suffix(".out")).absolute()
        error = output if spec.merged_output else Path(spec.error or "").absolute()
        return cls(script, output, error, script.with_name(script.name + ".exitcode"))

    @property
    def merged(self) -> bool:
        return self.output == self.error

    def read_exitcode(self) -> int | None:
        """The status the script recorded, or None if it has not finished."""
        try:
            text = self.exitcode.read_text().strip()
        except OSError:
            return None
        return int(text) if text.lstrip("-").isdigit() else None


def render_script(
    spec: JobSpec,
    files: JobFiles,
    *,
    directives: Sequence[str] = (),
    shell: str = "/bin/bash",
    record_signals: Sequence[signal.Signals] = (),
) -> str:
    """The job script: directives, environment, then each command in order.

    The script stops at the first failing command and exits with its status. A
    signal in ``record_signals`` ends it with status 128+signal, so the status file
    records the death by signal (bash would otherwise record the last status, often 0).
    """
    q = shlex.quote
    workdir = (spec.workdir or Path.cwd()).absolute()
    lines = [f"#!{shell}", *directives, f"# hpc-connect job {q(spec.name)}"]
    record = f'printf "%s\\n" "$?" > {q(str(files.exitcode))}'
    lines.append(f"trap {q(record)} EXIT")  # quoted whole: paths with spaces or quotes
    lines.extend(f"trap 'exit {128 + sig}' {sig.name[3:]}" for sig in record_signals)
    lines.append(f"cd {q(str(workdir))} || exit 1")
    for key, value in spec.variables:
        lines.append(f"unset {key}" if value is None else f"export {key}={q(value)}")
    lines.extend(f"eval {q(command)} || exit $?" for command in spec.commands)
    lines.append("exit 0")
    return "\n".join(lines) + "\n"


def write_script(spec: JobSpec, files: JobFiles, **render: object) -> None:
    """Write the script (mode 0755), creating folders, and clear any stale exit status."""
    for path in {files.script.parent, files.output.parent, files.error.parent}:
        path.mkdir(parents=True, exist_ok=True)
    files.exitcode.unlink(missing_ok=True)
    files.script.write_text(render_script(spec, files, **render))  # type: ignore[arg-type]
    os.chmod(files.script, 0o755)
