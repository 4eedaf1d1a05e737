"""Layer 2: a job as a shell script hpc_connect writes, and the backends that run one.

The extension API for backend authors: ``ScriptBackend`` (validate at ``submit``, then
``submit_spec``), ``ScriptProcess`` (a job with its ``JobFiles`` and recorded usage),
``JobFiles`` and ``job_key`` (where a job's files live), ``render_script`` and
``write_script`` (the two-stage script that records exit status and usage),
``submit_environment``, and the owner-only file helpers (``private_dir``,
``create_private``, ``ensure_private_file``, ``read_trusted``, ``current_umask``).

Modules: ``_files`` (JobFiles, job keys), ``_render`` (the script), ``_owner_only``
(files only their owner can read, no symlink following), ``_backend`` (ScriptBackend),
``_jobs`` (``JobIndex``: a backend's jobs by id, for dependencies).
"""

from ._backend import ScriptBackend, ScriptProcess
from ._files import JobFiles, job_key, safe_name
from ._jobs import JobIndex
from ._owner_only import (
    create_private,
    current_umask,
    ensure_private_file,
    private_dir,
    read_trusted,
)
from ._render import STATUS_WRAPPER, SUPERVISOR, render_script, submit_environment, write_script

__all__ = [
    "STATUS_WRAPPER",
    "SUPERVISOR",
    "JobFiles",
    "JobIndex",
    "ScriptBackend",
    "ScriptProcess",
    "create_private",
    "current_umask",
    "ensure_private_file",
    "job_key",
    "private_dir",
    "read_trusted",
    "render_script",
    "safe_name",
    "submit_environment",
    "write_script",
]
