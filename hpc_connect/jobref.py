"""The full reference to a submitted job: what ``backend.attach`` takes back later.

A bare job id is ambiguous once a process has died (which scheduler, which cluster,
which host, which pid incarnation?), so a reference records all of it in one line::

    hpc-connect:<backend>:<site>:<jobid>:<token>:<script>:<output>

``site`` is where the id means something (Slurm's ClusterName, the shell backend's host
name); ``token`` is what tells a job from a later one with the same id (the shell backend:
boot id and process start time); ``script`` locates the job's exit-status file
(``<script>.exitcode``, see ``script.JobFiles.for_ref``) and ``output`` its log. Paths
are percent-encoded, so a ``:`` in them cannot break the format. A reference made by
another backend or on another site is
refused with a message naming both, never taken for a local job.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, unquote

import attrs

from .errors import HPCConnectError
from .job import JobSpec

PREFIX = "hpc-connect"
_FIELDS = 7


def _plain(field: str, value: str) -> str:
    if ":" in value or "\n" in value:
        raise HPCConnectError(f"job reference {field}={value!r}: must not contain ':' or newlines")
    return value


@attrs.frozen
class JobRef:
    """One job, unambiguously: backend, site, id, incarnation token, script and log."""

    backend: str
    site: str
    jobid: str
    token: str = ""
    script: Path | None = None
    output: Path | None = None

    def __str__(self) -> str:
        paths = ("" if p is None else quote(str(p), safe="/") for p in (self.script, self.output))
        plain = (_plain(f, getattr(self, f)) for f in ("backend", "site", "jobid", "token"))
        return ":".join((PREFIX, *plain, *paths))

    @classmethod
    def parse(cls, text: str) -> JobRef | None:
        """The reference in ``text``; None if ``text`` is not one of ours (a bare id)."""
        if not text.startswith(PREFIX + ":"):
            return None
        parts = text.split(":")
        if len(parts) != _FIELDS or not parts[1] or not parts[3]:
            raise HPCConnectError(
                f"job reference {text!r}: expected {PREFIX}:<backend>:<site>:<jobid>:"
                "<token>:<script>:<output>")
        backend, site, jobid, token, script, output = parts[1:]
        return cls(backend, site, jobid, token,
                   Path(unquote(script)) if script else None,
                   Path(unquote(output)) if output else None)

    def check(self, backend: str, site: str) -> None:
        """Raise unless this reference was made by ``backend`` on ``site``."""
        if self.backend != backend or self.site != site:
            raise HPCConnectError(
                f"job {self.jobid} belongs to backend {self.backend!r} on {self.site or '?'!r}, "
                f"not to backend {backend!r} on {site or '?'!r}: it cannot be attached here")

    def spec(self) -> JobSpec:
        """A stand-in description for an attached job (its real one is not kept)."""
        return JobSpec.from_submit(self.script.stem if self.script else f"job-{self.jobid}",
                                   [":"])


def resolve(text: str, backend: str, site: str) -> JobRef:
    """``text`` (a reference, or a bare job id of this backend) checked against ``backend``
    on ``site``."""
    ref = JobRef.parse(text.strip())
    if ref is None:
        if not text.strip() or ":" in text or "\n" in text:
            raise HPCConnectError(f"job id {text!r}: expected a job id or a job reference "
                                  f"({PREFIX}:<backend>:...)")
        return JobRef(backend, site, text.strip())
    ref.check(backend, site)
    return ref
