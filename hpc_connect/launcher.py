"""``HPCLauncher``: starting a (parallel) program, and parsing launcher arguments;
``LaunchAdapter``, the second generation's command-line builder.

Both generations use ``HPCLauncher``: the first subclasses it (``matches``,
``executable``), the second constructs ``HPCLauncher(adapter)`` around a
``LaunchAdapter`` and calls ``submit(args)``/``launcher(args)``; every launcher has both.
Kept free of heavy imports: ``hpc-launch`` imports this on every call.
"""

from __future__ import annotations

import abc
import os
import sys

from ._locate import locate_config_file
from .errors import InvalidJobError, LauncherNotFoundError

TYPE_CHECKING = False  # typing, collections and shutil stay off hpc-launch's start-up path
if TYPE_CHECKING:
    import subprocess
    from collections.abc import Mapping, Sequence
    from typing import Any, ClassVar, NoReturn

    from .config import LauncherSettings

NP_FLAGS = ("-n", "-np", "--n", "--np")


class Segment:
    """One program of a launch: its process count, launcher options and argv."""

    __slots__ = ("nprocs", "options", "program")

    def __init__(self, nprocs: int | None, options: list[str], program: list[str]) -> None:
        self.nprocs = nprocs
        self.options = options
        self.program = program

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Segment) and (self.nprocs, self.options, self.program) == (
            other.nprocs, other.options, other.program)

    def __repr__(self) -> str:
        return f"Segment({self.nprocs!r}, {self.options!r}, {self.program!r})"

    # the second generation's names (its ``LaunchSpec``)
    @property
    def processes(self) -> int | None:
        return self.nprocs

    @property
    def args(self) -> list[str]:
        return [*self.options, *self.program]

    def partition(self) -> tuple[list[str], list[str]]:
        """(launcher options, program and its arguments)."""
        return list(self.options), list(self.program)


def which(program: str) -> str | None:
    """``shutil.which`` without importing shutil: the full path of ``program`` or None."""
    if os.sep in program:
        return program if os.access(program, os.X_OK) and os.path.isfile(program) else None
    for folder in os.get_exec_path():
        path = os.path.join(folder, program)
        if os.access(path, os.X_OK) and os.path.isfile(path):
            return path
    return None


def _count(flag: str, value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise InvalidJobError(f"{flag} {value!r}: expected a whole number of processes >= 1")
    return int(value)


def parse_segments(args: Sequence[str]) -> list[Segment]:
    """Split ``[-n N] [options] program args [: [-n N] program args ...]`` into segments.

    Options before the program are kept for the launcher; one that takes a separate
    value must be written ``--opt=value``, or ``--`` must stand before the program.
    """
    segments: list[list[str]] = [[]]
    for arg in args:
        if arg == ":":
            segments.append([])
        else:
            segments[-1].append(arg)
    parsed = []
    for number, tokens in enumerate(segments, 1):
        nprocs, options, i = None, [], 0
        while i < len(tokens) and tokens[i].startswith("-"):
            token = tokens[i]
            flag, eq, value = token.partition("=")
            if token == "--":
                i += 1
                break
            if flag in NP_FLAGS:
                if not eq:
                    if i + 1 >= len(tokens):
                        raise InvalidJobError(f"{token} needs a number of processes")
                    i += 1
                    value = tokens[i]
                nprocs = _count(flag, value)
            else:
                options.append(token)
            i += 1
        if i >= len(tokens):
            where = f" in segment {number}" if len(segments) > 1 else ""
            raise InvalidJobError(f"no program to launch{where}: {' '.join(tokens) or '(empty)'}")
        parsed.append(Segment(nprocs, options, list(tokens[i:])))
    return parsed


class HPCLauncher(abc.ABC):
    """A program starter (``mpiexec``, ``srun``, ...).

    A subclass must provide only ``matches`` and ``executable``; it need not call
    ``HPCLauncher.__init__`` (its ``[launchers.<name>]`` settings still apply). Ours set
    ``name``, ``executables`` (names looked up on PATH) and, where needed, override
    ``segment_argv`` (how ``-n N`` is spelled) and ``environment``.
    """

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    executables: ClassVar[tuple[str, ...]] = ()
    np_flag: ClassVar[str] = "-n"
    supports_mpmd: ClassVar[bool] = True
    #: the configuration file; a subclass whose __init__ does not call ours gets the default
    config_file: str | os.PathLike[str] | None = None

    #: the second generation's command-line builder, when constructed around one
    adapter: LaunchAdapter | None = None

    def __init__(self, config_file: str | os.PathLike[str] | LaunchAdapter | None = None,
                 ) -> None:
        if isinstance(config_file, LaunchAdapter):  # HPCLauncher(adapter), 2nd generation
            self.adapter = config_file
            self.backend = config_file.backend
            self.__dict__["_launcher_settings"] = None
            return
        self.config_file = config_file
        self._loaded_settings()  # a bad configuration fails here, not at launch

    def _loaded_settings(self) -> LauncherSettings | None:
        """This launcher's ``[launchers.<name>]`` settings, read once (also for a subclass
        whose ``__init__`` does not call ours)."""
        if "_launcher_settings" not in self.__dict__:
            name = getattr(self, "name", None)
            self.__dict__["_launcher_settings"] = (
                self._settings(self.config_file) if isinstance(name, str) else None)
        settings: LauncherSettings | None = self.__dict__["_launcher_settings"]
        return settings

    @property
    def configured_executable(self) -> str | None:
        settings = self._loaded_settings()
        return settings.executable if settings else None

    @property
    def configured_args(self) -> list[str]:
        settings = self._loaded_settings()
        return list(settings.default_args) if settings else []

    @property
    def vendor_args(self) -> Mapping[str, Sequence[str]]:
        settings = self._loaded_settings()
        return settings.vendor_args if settings else {}

    def _settings(self, config_file: str | os.PathLike[str] | None) -> LauncherSettings | None:
        if locate_config_file(config_file) is None:
            return None  # no file: skip the TOML parser and attrs on the hot path
        from .config import load_config

        launchers = load_config(config_file).launchers
        for name in (self.name, *self.aliases):
            if name in launchers:
                return launchers[name]
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={getattr(self, 'name', '?')!r}>"

    @classmethod
    def matches(cls, name: str | None) -> bool:
        """True if ``name`` names this launcher (case-insensitive)."""
        return name is not None and name.lower() in (cls.name, *cls.aliases)

    @property
    def executable(self) -> str:
        """The launcher program's full path; ``LauncherNotFoundError`` if it is missing."""
        candidates = [self.configured_executable] if self.configured_executable else list(
            self.executables)
        for candidate in candidates:
            found = which(candidate)
            if found:
                return found
        raise LauncherNotFoundError(
            f"launcher {self.name!r}: {' or '.join(candidates)} not found on PATH; install it "
            f"or set [launchers.{self.name}] executable in hpc_connect.toml")

    @property
    def default_args(self) -> list[str]:
        """Options placed right after the executable on every launch."""
        return list(self.configured_args)

    def environment(self, segments: Sequence[Segment]) -> dict[str, str]:
        """Variables the launch needs on top of the caller's environment."""
        return {}

    def segment_argv(self, segment: Segment) -> list[str]:
        """One segment's arguments, with the process count in this launcher's spelling."""
        count = [self.np_flag, str(segment.nprocs)] if segment.nprocs is not None else []
        return [*count, *segment.options, *segment.program]

    def segments_argv(self, segments: Sequence[Segment]) -> list[str]:
        if len(segments) > 1 and not self.supports_mpmd:
            raise InvalidJobError(
                f"launcher {self.name!r} does not support ':'-separated MPMD programs")
        argv: list[str] = []
        for i, segment in enumerate(segments):
            argv += ([":"] if i else []) + self.segment_argv(segment)
        return argv

    def build_argv(self, args: Sequence[str]) -> list[str]:
        """The full command line for ``[-n N] program args [: ...]``."""
        if self.adapter is not None:
            return self.adapter.build_argv(args)
        segments = parse_segments(args)
        return [self.executable, *self.default_args, *self.segments_argv(segments)]

    def command(self, args: Sequence[str]) -> tuple[list[str], dict[str, str]]:
        """``build_argv(args)`` and the extra environment it needs."""
        extra = self.environment(parse_segments(args))
        if self.adapter is not None:
            extra = {**extra, **self.adapter.variables()}
        return self.build_argv(args), extra

    def submit(self, args: Sequence[str], echo: bool = False,
               **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        """Run the program to completion (the second generation's call): keywords go to
        ``subprocess.run`` (``env`` is the base environment); returns its result."""
        import subprocess

        argv, extra = self.command(args)
        if echo:
            import shlex

            print(f"Command line: {shlex.join(argv)}", flush=True)
        env = {**(kwargs.pop("env", None) or os.environ), **extra}
        return subprocess.run(argv, env=env, **kwargs)

    def __call__(self, args: Sequence[str], echo: bool = False,
                 **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        return self.submit(args, echo, **kwargs)

    def launch(self, args: Sequence[str]) -> int:
        """Run the program to completion and return its exit status."""
        import subprocess

        argv, extra = self.command(args)
        return subprocess.run(argv, env={**os.environ, **extra}).returncode

    def exec(self, args: Sequence[str]) -> NoReturn:
        """Replace this process with the launcher: signals and exit status go straight through."""
        argv, extra = self.command(args)
        sys.stdout.flush()
        os.execve(argv[0], argv, {**os.environ, **extra})


class LaunchAdapter:
    """The second generation's launch-command builder for ``backend``, from its ``launch``
    settings (``default_options``, ``pre_options``, ``variables``, ``mpmd``). A subclass
    implements ``join_specs(segments)``; ``hpc_connect.mpi.MPIExecAdapter`` is one."""

    def __init__(self, *, config: Mapping[str, Any] | None = None, backend: Any = None) -> None:
        settings = dict(config or {})
        for key in ("default_options", "pre_options"):
            settings[key] = _options(settings.get(key))
        mpmd = dict(settings.get("mpmd") or {})
        settings["mpmd"] = {k: _options(mpmd.get(k)) for k in ("global_options", "local_options")}
        settings["variables"] = {str(k): str(v) for k, v in
                                 dict(settings.get("variables") or {}).items()}
        self.config = settings
        self.backend = backend

    def variables(self) -> dict[str, str]:
        return dict(self.config["variables"])

    def build_argv(self, args: Sequence[str]) -> list[str]:
        return self.join_specs(parse_segments(args))

    def join_specs(self, segments: Sequence[Segment]) -> list[str]:
        raise NotImplementedError(f"{type(self).__name__} must implement join_specs(segments)")


def _options(value: object) -> list[str]:
    """A list of options, or one string split like a shell would."""
    if value is None:
        return []
    if isinstance(value, str):
        import shlex

        return shlex.split(value)
    return [str(v) for v in value]  # type: ignore[attr-defined]
