"""The second generation's module of ``JobSpec`` (the same class as ``hpc_connect.job``'s)."""

from .job import JobSpec

__all__ = ["JobSpec"]
