"""The pilot layer: many jobs inside one scheduler allocation, with no scheduler job (or
query) per job.

The extension API: ``Allocation`` (acquire a holder job through the parent backend's
guarded ``submit_spec``, pack jobs into it, release it; a scheduler subclasses it for
what differs), ``Geometry``, ``AllocationRequest``, ``AllocationError``; the runners
that start jobs (``JobRunner``, ``StepRunner``, ``AgentRunner``) and ``EndReason``, why a
job ended; ``AllocationBackend``/``AllocatedProcess`` (the jobs of one allocation);
``AllocationPool`` (up to N allocations acquired as work demands); ``parse_duration``.

Modules: ``_base`` (Allocation), ``_packing`` (AllocationBackend), ``_runners``
(JobRunner, StepRunner), ``_agent_client`` (AgentRunner), ``_protocol`` (EndReason and
the spool files), ``agent`` (the agent itself: ``python -m hpc_connect.allocation.agent``),
``_pool`` (AllocationPool).
"""

from ..errors import AllocationError
from ..job import AllocationRequest
from ._agent_client import AgentRunner, agent_command, make_spool
from ._base import Allocation, Geometry, parse_duration
from ._packing import AllocatedProcess, AllocationBackend, job_cpus
from ._pool import AllocationPool
from ._protocol import EndReason
from ._runners import JobRunner, StepRunner

__all__ = [
    "AgentRunner",
    "AllocatedProcess",
    "Allocation",
    "AllocationBackend",
    "AllocationError",
    "AllocationPool",
    "AllocationRequest",
    "EndReason",
    "Geometry",
    "JobRunner",
    "StepRunner",
    "agent_command",
    "job_cpus",
    "make_spool",
    "parse_duration",
]
