"""The README's minimal backend and launcher, with the ``...`` filled in the obvious way:
``my-backend`` runs each job as a local ``sh`` process, ``my-launcher`` is the site's
``mpiexec``."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from typing import Any

import hpc_connect
from hpc_connect import HPCBackend, HPCLauncher, HPCProcess


class MyProcess(HPCProcess):
    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self.popen = popen
        self._returncode: int | None = None

    @property
    def jobid(self) -> str:
        return str(self.popen.pid)

    @property
    def returncode(self) -> int | None:
        return self._returncode

    @returncode.setter
    def returncode(self, arg: int | None) -> None:
        self._returncode = arg

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.popen.poll()
        return self.returncode

    def cancel(self) -> None:
        if self.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            self.returncode = self.popen.wait()


class MyBackend(HPCBackend):
    name = "my-backend"

    @staticmethod
    def matches(name: str | None) -> bool:
        return name is not None and name.lower() in ("my-backend", "mine")

    def submit(
        self,
        name: str,
        args: list[str],
        scriptname: str | None = None,
        qtime: float | None = None,
        submit_flags: list[str] | None = None,
        variables: dict[str, str | None] | None = None,
        output: str | None = None,
        error: str | None = None,
        nodes: int | None = None,
        cpus: int | None = None,
        gpus: int | None = None,
        **kwargs: Any,
    ) -> HPCProcess:
        script = scriptname or os.path.join(tempfile.mkdtemp(), "job.sh")
        with open(script, "w") as fh:
            fh.write("#!/bin/sh\nset -e\n" + "\n".join(args) + "\n")
        env = dict(os.environ)
        for key, value in (variables or {}).items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        out = open(output or os.devnull, "w")  # noqa: SIM115
        err = subprocess.STDOUT if error in (None, output) else open(error, "w")  # noqa: SIM115
        popen = subprocess.Popen(["/bin/sh", script], env=env, stdout=out, stderr=err,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()
        if err is not subprocess.STDOUT:
            err.close()
        return MyProcess(popen)


class MyLauncher(HPCLauncher):
    name = "my-launcher"

    def __init__(self, config_file: str | None = None) -> None:
        self.config_file = config_file

    @staticmethod
    def matches(name: str | None) -> bool:
        return name is not None and name.lower() == "my-launcher"

    @property
    def executable(self) -> str:
        return shutil.which("mpiexec") or "mpiexec"


@hpc_connect.hookimpl
def hpc_connect_backend() -> type[HPCBackend]:
    return MyBackend


@hpc_connect.hookimpl
def hpc_connect_launcher() -> type[HPCLauncher]:
    return MyLauncher
