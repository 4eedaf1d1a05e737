"""The second generation's members of every backend, with defaults built on the first's.

``HPCBackend`` inherits these, so a first-generation backend (ours, or a seed-style
plugin) answers second-generation callers (``backend.config["submit"]``,
``backend.node_count``, ``count_per_node("cpus")``, ``submission_manager().submit``), and
a second-generation subclass (``type``, ``default_config``, ``resource_specs``,
``submission_manager``) gets the first generation's ``submit``/``poll_many``/``config``
attributes from its own members.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from ._dual import Count, CountProperty, LauncherMethod
from ._names import load
from .job import JobSpec
from .machine import MachineConfig
from .submit import BackendAdapter, HPCSubmissionManager
from .topology import Topology

if TYPE_CHECKING:
    from .launcher import HPCLauncher
    from .process import HPCProcess


def launch_settings() -> dict[str, Any]:
    return {"default_options": [], "pre_options": [], "variables": {},
            "mpmd": {"global_options": [], "local_options": []}}


class SecondGeneration:
    """Mixed into ``HPCBackend``; see the module docstring."""

    name: ClassVar[str]
    #: the second generation's name of the backend's kind (``name`` for ours)
    type: ClassVar[str]
    #: whether ``JobSpec.dependencies`` are handed to the scheduler (or the shell backend)
    dependencies_supported: ClassVar[bool] = False
    #: 2 for a class written for the second generation (``type``, settings as ``cfg``)
    generation: ClassVar[int] = 1
    default_polling_interval: ClassVar[float]
    default_submit_flags: tuple[str, ...]
    polling_interval: float

    # ---- settings ------------------------------------------------------------------------
    @classmethod
    def default_config(cls) -> dict[str, Any]:
        """The second generation's settings of this backend when nothing is configured."""
        return {"type": cls.type, "config": {}, "launch": launch_settings(),
                "submit": {"default_options": [],
                           "polling_interval": float(cls.default_polling_interval)}}

    def _settings(self) -> dict[str, Any]:
        stored = self.__dict__.get("_gen2_settings")
        settings: dict[str, Any] = dict(stored) if stored else self.default_config()
        settings.setdefault("type", self.type)
        settings["name"] = self.name
        settings["submit"] = {**settings.get("submit", {}),
                              "default_options": list(self.default_submit_flags),
                              "polling_interval": float(self.polling_interval)}
        settings.setdefault("launch", launch_settings())
        settings.setdefault("config", {})
        return settings

    @functools.cached_property
    def config(self) -> MachineConfig:
        """The backend's settings as a dict (``type``, ``name``, ``config``, ``launch``,
        ``submit``) whose attributes are the machine's geometry (the seed's
        ``config.node_count``, ``cpus_per_node``, ...; discovered once, on first use)."""
        return MachineConfig(self._settings(), lambda: (
            int(self.node_count), int(self.cpus_per_node()), int(self.gpus_per_node())))

    # ---- what the machine offers -----------------------------------------------------
    def _gen2_specs(self) -> bool:
        return type(self).resource_specs is not SecondGeneration.resource_specs

    @property
    def resource_specs(self) -> list[dict[str, Any]]:
        """The machine as node groups (``[{"type": "node", "count": N, "resources": ...}]``)."""
        return Topology.uniform(int(self.node_count), cpu=int(self.cpus_per_node()),
                                gpu=int(self.gpus_per_node())).specs()

    @functools.cached_property
    def topology(self) -> Topology:
        return Topology.from_specs(self.resource_specs)

    def cpus_per_node(self) -> int:
        if self._gen2_specs():
            return self.topology.uniform_per_node("cpu")
        return os.cpu_count() or 1

    def gpus_per_node(self) -> int:
        if self._gen2_specs() and "gpu" in self.topology.resource_types():
            return self.topology.uniform_per_node("gpu")
        return 0

    @CountProperty
    def node_count(self) -> int:
        """The number of nodes (an int; calling it, as the first generation did, works too)."""
        return self.topology.node_count if self._gen2_specs() else 1

    def resource_types(self) -> list[str]:
        """The machine's resource types per node (``["cpu"]``, ``["cpu", "gpu"]``)."""
        return self.topology.resource_types()

    def count_per_node(self, rtype: str, default: int | None = None) -> int:
        """How many of ``rtype`` (``cpus``, ``gpu``, ...) each node has; ``ValueError`` for a
        type this machine lacks (unless ``default`` is given)."""
        try:
            return Count(self.topology.uniform_per_node(rtype))
        except ValueError:
            if default is not None:
                return default
            raise

    def max_per_node(self, rtype: str) -> int:
        return self.topology.max_per_node(rtype)

    def min_per_node(self, rtype: str) -> int:
        return self.topology.min_per_node(rtype)

    def uniform_per_node(self, rtype: str) -> int:
        return self.topology.uniform_per_node(rtype)

    def total_resources(self, rtype: str) -> int:
        return self.topology.total(rtype)

    def is_homogeneous(self) -> bool:
        return self.topology.is_homogeneous()

    def resource_view(self, *, ranks: int | None = None,
                      ranks_per_socket: int | None = None) -> dict[str, int]:
        return self.topology.resource_view(ranks=ranks, ranks_per_socket=ranks_per_socket)

    def describe(self) -> str:
        """Name, type and resources per node, one per line."""
        lines = [f"Name: {self.name}", f"Type: {self.type}", "Available resources:",
                 f"  Nodes: {int(self.node_count)}"]
        lines += [f"  {rtype}s per node: {self.count_per_node(rtype)}"
                  for rtype in self.resource_types()]
        return "\n".join(lines)

    def supports_dependencies(self) -> bool:
        """Whether ``JobSpec.dependencies`` are honoured (the job starts after them)."""
        return self.dependencies_supported

    # ---- submission -------------------------------------------------------------------
    def submission_manager(self) -> HPCSubmissionManager:
        """The second generation's way in: ``submit(spec)`` returns a ``Future``."""
        return HPCSubmissionManager(adapter=BackendAdapter(self), backend=self)  # type: ignore[arg-type]

    def submit_job(self, spec: JobSpec) -> HPCProcess:
        """Submit one validated job through this backend's first-generation ``submit``."""
        process: HPCProcess = self.submit(  # type: ignore[attr-defined]
            spec.name, list(spec.commands), **submit_keywords(spec))
        return process

    def submit_jobs(self, specs: Sequence[JobSpec]) -> list[HPCProcess]:
        """Submit validated jobs; if one fails, those already submitted are cancelled."""
        processes: list[HPCProcess] = self.submit_all(  # type: ignore[attr-defined]
            lambda i: self.submit_job(specs[i]), len(specs))
        return processes

    # ---- launching ---------------------------------------------------------------------
    def launch_client(self) -> HPCLauncher:
        """The launcher object of ``backend.launcher`` (what ``backend.launcher()`` returns)."""
        own = next((vars(k)["launcher"] for k in type(self).__mro__ if "launcher" in vars(k)),
                   None)
        if isinstance(own, LauncherMethod):  # a second-generation class's own launcher()
            made: HPCLauncher = own.method(self)
            return made
        get_launcher = load("hpc_connect.registry:get_launcher")  # the registry is above
        launcher: HPCLauncher = get_launcher(str(getattr(self, "launcher", "mpi")))
        return launcher

    def launch_adapter(self) -> HPCLauncher:
        """What builds a launch command line (``build_argv(args)``): the launcher itself."""
        return self.launch_client()


def submit_keywords(spec: JobSpec) -> dict[str, Any]:
    """``spec`` as first-generation ``submit`` keywords (every field that is set)."""
    kwargs: dict[str, Any] = dict(spec.extra)
    for field in ("scriptname", "qtime", "output", "error", "nodes", "cpus", "gpus", "tasks",
                  "memory_mb", "workdir", "partition", "account", "qos", "constraint",
                  "reservation", "clusters", "workspace"):
        value = getattr(spec, field)
        if value is not None:
            kwargs[field] = value
    if spec.submit_flags:
        kwargs["submit_flags"] = list(spec.submit_flags)
    if spec.variables:
        kwargs["variables"] = dict(spec.variables)
    if spec.dependencies:
        kwargs["dependencies"] = list(spec.dependencies)
    if spec.extensions:
        kwargs["extensions"] = dict(spec.extensions)
    return kwargs


def wrap_members(cls: type) -> None:
    """For a subclass: a ``def node_count(self)`` override becomes a ``Count`` property,
    a ``launcher = "srun"`` string the callable launcher name, and a second-generation
    class gets ``name`` from its settings and ``type`` stays its own."""
    from ._dual import LauncherProperty

    own = vars(cls)
    method = own.get("node_count")
    if callable(method) and not isinstance(method, CountProperty):
        cls.node_count = CountProperty(method)  # type: ignore[attr-defined]
    elif isinstance(method, property) and method.fget is not None:
        cls.node_count = CountProperty(method.fget)  # type: ignore[attr-defined]
    if isinstance(own.get("launcher"), str):
        cls.launcher = LauncherProperty(own["launcher"])  # type: ignore[attr-defined]
    elif callable(own.get("launcher")) and not isinstance(own["launcher"], type):
        cls.launcher = LauncherMethod(own["launcher"])  # type: ignore[attr-defined]
    if isinstance(own.get("name"), str) and "type" not in own:
        cls.type = own["name"]  # type: ignore[attr-defined]
    if isinstance(own.get("type"), str) and "name" not in own and not any(
            isinstance(vars(k).get("name"), str) for k in cls.__mro__[1:]):
        cls.name = SettingsName()  # type: ignore[attr-defined]
        cls.generation = 2  # type: ignore[attr-defined]


class SettingsName:
    """A second-generation backend's ``name``: its settings' ``name``, else its ``type``."""

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return getattr(owner, "type", None)
        stored = instance.__dict__.get("_gen2_settings") or {}
        return instance.__dict__.get("_name") or stored.get("name") or owner.type  # type: ignore[union-attr]

    def __set__(self, instance: Any, value: str) -> None:
        instance.__dict__["_name"] = value


