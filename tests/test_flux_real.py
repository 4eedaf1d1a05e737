"""Both Flux backends against a real Flux: flux-core 0.88.0, a 2-broker test instance
started by tests/flux/cluster.sh (``flux_cluster``). ``flux.sh`` runs the flux commands;
``flux`` uses the Python bindings in this process. The node-loss test runs last, in an
instance of its own (its rank-1 broker is killed), so the shared one stays healthy."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FLUX_CLUSTER, FLUX_PREFIX, flux_env, start_flux
from helpers import processes_with, program, wait_until

import hpc_connect
from hpc_connect import JobState
from hpc_connect.builtin_backends.flux import parse_id

pytestmark = [pytest.mark.flux, pytest.mark.slow]
BACKENDS = ["flux.sh", "flux"]


def marker() -> str:
    """A unique ``sleep`` command line, to find a job's processes in the process table."""
    return f"sleep 4{random.randrange(10**6):06d}"


@pytest.fixture
def here(tmp_path: Path, flux_cluster: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Jobs are submitted from ``tmp_path`` (their Flux ``cwd``: the session's clean-up
    finds them there)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def backend(name: str, workdir: Path, **options: Any) -> Any:
    return hpc_connect.get_backend(name, workdir=workdir, polling_interval=0.5, **options)


def flux_jobs_under(folder: Path, uri: str | None = None) -> list[dict[str, Any]]:
    """Jobs of any state whose working folder is ``folder``."""
    env = {**os.environ, **({"FLUX_URI": uri} if uri else {})}
    out = subprocess.run(["flux", "jobs", "-a", "--json"], capture_output=True, text=True,
                         timeout=60, env=env, check=True).stdout
    return [j for j in json.loads(out)["jobs"] if j.get("cwd") == str(folder)]


def active_under(folder: Path) -> list[dict[str, Any]]:
    return [j for j in flux_jobs_under(folder) if j["state"] != "INACTIVE"]


class StatusCount:
    """Counts status queries as Flux sees them: ``flux jobs`` commands (a logging
    ``flux`` first on PATH) or job-list RPCs sent by this process's bindings."""

    def __init__(self, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.name, self.log, self.topics = name, tmp_path / "flux-calls.log", []
        if name == "flux.sh":
            wrapper = tmp_path / "bin" / "flux"
            wrapper.parent.mkdir()
            wrapper.write_text(f'#!/bin/bash\nprintf "%s\\n" "$*" >> {self.log}\n'
                               f'exec {FLUX_PREFIX}/bin/flux "$@"\n')
            wrapper.chmod(0o755)
            monkeypatch.setenv("PATH", f"{wrapper.parent}:{os.environ['PATH']}")
        else:
            import flux.rpc

            original = flux.rpc.RPC.__init__

            def counting(rpc: Any, handle: Any, topic: Any, *args: Any, **kw: Any) -> None:
                self.topics.append(str(topic))
                original(rpc, handle, topic, *args, **kw)

            monkeypatch.setattr(flux.rpc.RPC, "__init__", counting)

    def __call__(self) -> int:
        if self.name == "flux.sh":
            lines = self.log.read_text().splitlines() if self.log.exists() else []
            return sum(line.startswith("jobs ") for line in lines)
        return sum(topic.startswith("job-list.") for topic in self.topics)


@pytest.mark.parametrize("name", BACKENDS)
def test_exit_codes_with_one_status_query_per_cycle(here: Path, name: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Five jobs: exit codes 0, 3, 0, 7 and 0 and their output; while they run, every
    poll cycle asks Flux at most once (one ``flux jobs`` / one job-list RPC for all)."""
    b = backend(name, here)  # (the flux backend puts the bindings on sys.path)
    count = StatusCount(name, here, monkeypatch)
    codes = [0, 3, 0, 7, 0]
    procs = b.submitn([f"job{i}" for i in range(5)],
                      [[f"sleep 3; echo out-{i}; exit {c}"] for i, c in enumerate(codes)])
    asked, cycles = [], 0
    while not all(p.done for p in procs) and cycles < 2000:
        before = count()
        b.poll_many(procs)
        asked.append(count() - before)
        cycles += 1
        if not all(p.done for p in procs):
            wait_until(lambda: False, timeout=0.1)
    assert [p.returncode for p in procs] == codes, [(p.state, p.reason) for p in procs]
    assert [p.state for p in procs] == [JobState.COMPLETED, JobState.FAILED,
                                        JobState.COMPLETED, JobState.FAILED, JobState.COMPLETED]
    assert procs[1].reason == "exit code 3"
    for i, p in enumerate(procs):
        assert f"out-{i}" in p.files.output.read_text()
    assert max(asked) == 1 and sum(asked) >= 2, asked  # queries happened, one per cycle


@pytest.mark.parametrize("name", BACKENDS)
def test_time_limit_leaves_no_process(here: Path, name: str) -> None:
    """A job over its 15 s limit ends ``timed-out`` with Flux's reason, and none of its
    processes is left (Flux ends a batch job's script with SIGALRM: the job script ends
    every process of the job on it)."""
    mark = marker()
    proc = backend(name, here).submit("limit", [f"{mark} & {mark}"], qtime=15)
    assert wait_until(lambda: len(processes_with(mark)) == 2, timeout=60), proc.state
    assert proc.wait(timeout=120) != 0
    assert proc.state is JobState.TIMED_OUT, (proc.state, proc.reason)
    assert "time limit" in proc.reason and "expired" in proc.reason
    assert wait_until(lambda: not processes_with(mark), timeout=30), processes_with(mark)


@pytest.mark.parametrize("name", BACKENDS)
def test_cancel_leaves_no_process(here: Path, name: str) -> None:
    """``cancel()`` of a running job with a background child, a ``setsid`` child and a
    foreground one: ``cancelled``, no process left, nothing of ours active in Flux."""
    mark = marker()
    proc = backend(name, here).submit(
        "cancelme", [f"{mark} & setsid {mark} & {mark}"])
    assert wait_until(lambda: len(processes_with(mark)) == 3, timeout=60), proc.state
    proc.cancel()
    assert proc.wait(timeout=60) != 0 and proc.state is JobState.CANCELLED
    assert wait_until(lambda: not processes_with(mark), timeout=30), processes_with(mark)
    assert wait_until(lambda: not active_under(here), timeout=30), active_under(here)


CRASHING = """
import os, sys, hpc_connect
b = hpc_connect.get_backend(sys.argv[1], workdir=sys.argv[2])
refs = [b.job_ref(b.submit("slow3", ["sleep 8; exit 3"])),
        b.job_ref(b.submit("quick", ["echo quick"]))]
print("\\n".join(refs), flush=True)
os._exit(0)  # a crash: no clean-up
"""


@pytest.mark.parametrize("name", BACKENDS)
def test_attach_after_a_crash(here: Path, name: str) -> None:
    """A Python that submitted two jobs dies with ``os._exit``; another attaches by the
    references it printed: the running one is followed to its exit code 3, the quick one
    is known to have completed."""
    done = subprocess.run([sys.executable, "-c", CRASHING, name, str(here)],
                          capture_output=True, text=True, timeout=120, check=True)
    slow_ref, quick_ref = done.stdout.split()
    b = backend(name, here)
    slow = b.attach(slow_ref)
    assert slow.state in (JobState.PENDING, JobState.RUNNING)
    assert slow.wait(timeout=120) == 3 and slow.state is JobState.FAILED
    quick = b.attach(quick_ref)
    assert quick.wait(timeout=60) == 0 and quick.state is JobState.COMPLETED
    assert "quick" in quick.files.output.read_text()


@pytest.mark.parametrize("name", BACKENDS)
def test_lost_submit_reply_is_not_resubmitted(here: Path, name: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The submission reaches Flux but its reply is lost (``flux batch`` exits 1 with
    "Connection refused" after submitting; the API call returns that error after its
    RPC): ``find_submitted`` finds the job by name and working folder, the job runs
    once and completes."""
    b = backend(name, here, retry_delay=0.2)
    if name == "flux.sh":
        wrapper = here / "bin" / "flux"
        wrapper.parent.mkdir()
        wrapper.write_text(f'#!/bin/bash\nif [ "$1" = batch ]; then {FLUX_PREFIX}/bin/flux '
                           '"$@" >/dev/null; echo "flux-batch: ERROR: Connection refused" >&2; '
                           f'exit 1; fi\nexec {FLUX_PREFIX}/bin/flux "$@"\n')
        wrapper.chmod(0o755)
        monkeypatch.setenv("PATH", f"{wrapper.parent}:{os.environ['PATH']}")
    else:
        real = b.submit_once

        def lossy(argv: Any, env: Any) -> tuple[str | None, str]:
            real(argv, env)
            return None, "Connection refused"

        monkeypatch.setattr(b, "submit_once", lossy)
    proc = b.submit("lost-reply", ["echo ran once"])
    assert proc.wait(timeout=120) == 0
    ours = [j for j in flux_jobs_under(here) if j["name"] == "lost-reply"]
    assert [str(j["id"]) for j in ours] == [str(parse_id(proc.jobid))]
    assert proc.files.output.read_text().count("ran once") == 1


@pytest.mark.parametrize("name", BACKENDS)
def test_dependency_starts_after_its_job(here: Path, name: str) -> None:
    """``dependencies=[id]`` (``--dependency=afterany:``, given once): the second job
    waits while the first runs, then runs after it even though the first failed."""
    b = backend(name, here)
    assert b.supports_dependencies()
    order = here / "order.txt"
    first = b.submit("first", [f"sleep 5; echo first >> {order}; exit 2"])
    second = b.submit("second", [f"echo second >> {order}"], dependencies=[first.jobid])
    assert wait_until(lambda: (b.poll_many([first, second]), first.state)[1]
                      is JobState.RUNNING, timeout=60)
    b.poll_many([second])
    assert second.state is JobState.PENDING
    assert first.wait(timeout=120) == 2 and second.wait(timeout=120) == 0
    assert order.read_text().split() == ["first", "second"]
    info = subprocess.run(["flux", "job", "info", second.jobid, "jobspec"], capture_output=True,
                          text=True, timeout=60, check=True).stdout
    deps = json.loads(info)["attributes"]["system"]["dependencies"]
    assert [d["scheme"] for d in deps] == ["afterany"]


@pytest.mark.parametrize("name", BACKENDS)
def test_warning_before_the_time_limit(here: Path, name: str) -> None:
    """``warn_before=45`` on a 60 s job: Flux sends SIGUSR1 45 s before the limit, the
    job script passes it to the commands' shell, whose trap ends the job cleanly."""
    warned = here / "warned"
    proc = backend(name, here, warn_before=45).submit("warned", [
        f"trap 'echo warned > {warned}; exit 0' USR1", "sleep 120 & wait"], qtime=60)
    assert proc.wait(timeout=120) == 0, (proc.state, proc.reason)
    assert proc.state is JobState.COMPLETED and warned.read_text() == "warned\n"


@pytest.mark.parametrize("name", BACKENDS)
def test_allocation_runs_jobs_in_one_flux_job(here: Path, name: str) -> None:
    """Allocation mode: the agent in one Flux job runs four jobs (codes 0 and 3, output
    kept); Flux sees one job only (the holder), which is gone after the block."""
    b = backend(name, here)
    with b.allocate(cpus=2, qtime=300) as alloc:
        procs = alloc.backend.submitn([f"a{i}" for i in range(4)],
                                      [[f"echo in-{i}; exit {3 * (i % 2)}"] for i in range(4)])
        assert [p.wait(timeout=120) for p in procs] == [0, 3, 0, 3]
        assert len(flux_jobs_under(here)) == 1
    assert "in-2" in procs[2].files.output.read_text()
    assert wait_until(lambda: not active_under(here), timeout=60), active_under(here)


def test_hpc_launch_flux_run_inside_a_flux_job(here: Path) -> None:
    """``hpc-launch --backend=flux-run -n 2`` in a job starts both ranks with ``flux run``."""
    launch = program("hpc-launch")
    proc = backend("flux", here).submit("launch", [
        f"{launch} --backend=flux-run -n 2 sh -c 'echo rank $FLUX_TASK_RANK of $PMI_SIZE'"],
        cpus=2)
    assert proc.wait(timeout=120) == 0, proc.files.output.read_text()
    lines = [line for line in proc.files.output.read_text().splitlines()
             if line.startswith("rank")]
    assert sorted(lines) == ["rank 0 of 2", "rank 1 of 2"]


def test_names_and_missing_bindings_are_one_line(tmp_path: Path) -> None:
    """``flux``, ``flux.py``, ``flux:py`` name the Python-API backend and ``flux.sh``,
    ``flux-shell``, ``flux:sh``, ``flux-cli`` the CLI one. Where the bindings cannot be
    found (no flux on PATH) or imported (cffi missing), ``get_backend("flux")`` fails with
    one line naming what to do and ``flux.sh``; ``hpc-connect info`` says so too."""
    from hpc_connect.builtin_backends.flux import FluxBackend
    from hpc_connect.builtin_backends.flux_api import FluxAPIBackend
    from hpc_connect.registry import find_backend_class

    for alias in ("flux", "flux.py", "flux:py"):
        assert find_backend_class(alias) is FluxAPIBackend
    for alias in ("flux.sh", "flux-shell", "flux:sh", "flux-cli"):
        assert find_backend_class(alias) is FluxBackend
    code = textwrap.dedent("""
        import sys
        if sys.argv[1] == "nocffi":
            sys.modules["_cffi_backend"] = None
        import hpc_connect
        try:
            hpc_connect.get_backend("flux")
        except hpc_connect.HPCConnectError as exc:
            print(exc)
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    nopath = {**env, "PATH": "/usr/bin:/bin"}
    gone = subprocess.run([sys.executable, "-c", code, "-"], capture_output=True, text=True,
                          timeout=60, env=nopath).stdout
    assert gone.count("\n") == 1 and "no flux command is on PATH" in gone and "flux.sh" in gone
    withpath = {**env, **flux_env()}
    nocffi = subprocess.run([sys.executable, "-c", code, "nocffi"], capture_output=True,
                            text=True, timeout=60, env=withpath).stdout
    assert nocffi.count("\n") == 1 and "cannot be imported" in nocffi, nocffi
    assert "pip install cffi pyyaml ply" in nocffi and "'flux.sh'" in nocffi
    info = subprocess.run([program("hpc-connect"), "info"], capture_output=True, text=True,
                          timeout=60, env=nopath).stdout
    assert "flux (also: flux.py, flux:py)" in info and "unavailable: flux:" in info


# ---- last: a job that loses its node, in an instance of its own ---------------------------
@pytest.fixture
def doomed_instance(flux_cluster: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A second 2-broker instance (its own HPC_CONNECT_FLUX_DIR), this process pointed at
    it; stopped at the end."""
    state = f"/tmp/hpc-connect-flux-r1-{os.getpid()}"
    env = flux_env(state)
    try:
        env["FLUX_URI"] = start_flux(state)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        yield env
    finally:
        subprocess.run(["bash", str(FLUX_CLUSTER), "stop"], capture_output=True, timeout=180,
                       env={**os.environ, **env})
        subprocess.run(["rm", "-rf", state], timeout=60)


def test_jobs_losing_their_node_fail_with_that_reason(tmp_path: Path,
                                                      doomed_instance: dict[str, str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """``cluster.sh kill-rank1`` (SIGKILL of the rank-1 broker and what it runs, like a
    node crash) under a job pinned to rank 1 (``flux.sh``) and a 2-node job (``flux``):
    both end ``failed`` with Flux's reason (node failure on rank 1), never as success, and
    none of their processes is left."""
    monkeypatch.chdir(tmp_path)
    marks = [marker(), marker()]
    pinned = backend("flux.sh", tmp_path).submit("pinned", [marks[0]], constraint="rank:1")
    wide = backend("flux", tmp_path).submit("wide", [marks[1]], nodes=2, cpus=2)
    assert wait_until(lambda: all(processes_with(m) for m in marks), timeout=90), (
        pinned.state, wide.state)
    killed = subprocess.run(["bash", str(FLUX_CLUSTER), "kill-rank1"], capture_output=True,
                            text=True, timeout=60, env={**os.environ, **doomed_instance})
    assert killed.returncode == 0, killed.stderr
    for proc in (pinned, wide):
        proc.wait(timeout=120)
        assert proc.state is JobState.FAILED and proc.returncode != 0, (proc.state, proc.reason)
        assert "node failure" in proc.reason and "rank 1" in proc.reason, proc.reason
    assert wait_until(lambda: not any(processes_with(m) for m in marks), timeout=30)
