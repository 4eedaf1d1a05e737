"""A second-generation backend plugin: local jobs run by `sh`, the way upstream's plugins
are written (they know nothing of the first generation's submit/poll_many)."""

import contextlib
import os
import shlex
import signal
import subprocess
import time

import hpc_connect
from hpc_connect.mpi import MPIExecAdapter
from hpc_connect.submit import HPCSubmissionManager, SubmissionAdapter


class Gen2Process(hpc_connect.HPCProcess):
    def __init__(self, spec):
        os.makedirs(spec.workspace, exist_ok=True)
        script = os.path.join(spec.workspace, f"{spec.name}.sh")
        with open(script, "w") as fh:
            fh.write("#!/bin/sh\n")
            for key, value in spec.env.items():
                fh.write(f"unset {key}\n" if value is None else
                         f"export {key}={shlex.quote(value)}\n")
            fh.write("".join(f"{command}\n" for command in spec.commands))
        with open(spec.output or os.devnull, "w") as out:
            if spec.error in (None, spec.output):
                self.popen = subprocess.Popen(["sh", script], stdout=out,
                                              stderr=subprocess.STDOUT, start_new_session=True)
            else:
                with open(spec.error, "w") as err:
                    self.popen = subprocess.Popen(["sh", script], stdout=out, stderr=err,
                                                  start_new_session=True)
        self.jobid = str(self.popen.pid)
        self.submitted = self.started = time.time()

    @property
    def returncode(self):
        return self.popen.returncode

    @returncode.setter
    def returncode(self, value):
        self.popen.returncode = value

    def poll(self):
        return self.popen.poll()

    def cancel(self):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        self.popen.wait()


class Gen2Adapter(SubmissionAdapter):
    def submit(self, spec, exclusive=False):
        return Gen2Process(spec)


class Gen2Backend(hpc_connect.Backend):
    type = "gen2-local"

    @classmethod
    def matches(cls, arg):
        return arg in ("gen2-local", "gen2")

    @classmethod
    def default_config(cls):
        return {"type": cls.type, "config": {},
                "launch": {"default_options": [], "pre_options": [], "variables": {},
                           "mpmd": {"global_options": [], "local_options": []}},
                "submit": {"default_options": [], "polling_interval": 0.2}}

    @property
    def resource_specs(self):
        return [{"type": "node", "count": 1, "resources": [{"type": "cpu", "count": 2}]}]

    def submission_manager(self):
        return HPCSubmissionManager(adapter=Gen2Adapter(config=self.config["submit"]))

    def launch_adapter(self):
        return MPIExecAdapter(config=self.config["launch"], backend=self)

    def launcher(self):
        return hpc_connect.HPCLauncher(self.launch_adapter())


@hpc_connect.hookimpl
def hpc_connect_backend():
    return Gen2Backend
