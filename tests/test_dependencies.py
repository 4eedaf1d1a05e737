"""Job dependencies (``afterany``: a job starts once each dependency ended, however it
ended) on every backend: real jobs on the shell backend, the one-node Slurm and the
one-node Grid Engine; generated command lines for PBS, LSF and Flux."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from helpers import processes_with, wait_until
from sge_jobs import jobs_under

import hpc_connect
from hpc_connect import InvalidJobError, JobSpec, JobState
from hpc_connect.batch import BatchProcess
from hpc_connect.builtin_backends.flux import FluxBackend
from hpc_connect.builtin_backends.lsf import LSFBackend
from hpc_connect.builtin_backends.pbs import PBSBackend
from hpc_connect.builtin_backends.sge import SGEBackend, parse_qstat_xml
from hpc_connect.builtin_backends.shell import ShellBackend
from hpc_connect.builtin_backends.slurm import SlurmBackend
from hpc_connect.script import JobFiles


def marker(seconds: int = 30) -> str:
    """A unique ``sleep`` argument, to find a job's process in the process table."""
    return f"{seconds}.{uuid.uuid4().int % 10**9:09d}"


def stamp(path: Path) -> str:
    return f"date +%s.%N > {path}"


def when(path: Path) -> float:
    return float(path.read_text())


def files(tmp_path: Path) -> JobFiles:
    out = tmp_path / "j.out"
    return JobFiles(tmp_path / "j.sh", out, out, tmp_path / "j.sh.exitcode")


# ---- every backend ----------------------------------------------------------------------
ALL = [ShellBackend(), SlurmBackend(), SGEBackend(pe="smp"), PBSBackend(), LSFBackend(),
       FluxBackend()]


@pytest.mark.parametrize("backend", ALL, ids=lambda b: b.name)
def test_supports_dependencies(backend: hpc_connect.HPCBackend) -> None:
    assert backend.supports_dependencies() is True


def test_backend_without_dependencies_refuses_them(tmp_path: Path) -> None:
    """A backend that cannot hold jobs says so instead of starting the job at once."""

    class NoDependencies(ShellBackend):
        dependencies_supported = False

    backend = NoDependencies(workdir=tmp_path)
    first = backend.submit("first", ["true"])
    with pytest.raises(InvalidJobError, match=r"^shell: dependencies=\[.*cannot hold a job"):
        backend.submit("second", [f"touch {tmp_path}/ran"], dependencies=[first.jobid])
    assert first.wait(timeout=30) == 0
    assert backend.live_processes() == []


# ---- generated command lines (PBS, LSF, Flux: no real scheduler runs here) ----------------
def test_generated_dependency_options(tmp_path: Path) -> None:
    """Each scheduler's own afterany spelling, on the submit command line. No PBS, LSF or
    Flux scheduler runs here, so these check the generated argv and script lines; Grid
    Engine's and Flux's dependencies stay off the directive lines (qsub and flux batch
    would add those to the command line's)."""
    def argv(backend: Any, deps: list[str]) -> list[str]:
        spec = JobSpec(name="j", commands=["true"], dependencies=deps)
        return backend.submit_argv(spec, files(tmp_path))

    assert "--dependency=afterany:11:12_3" in argv(SlurmBackend(), ["11", "12_3"])
    sge = argv(SGEBackend(pe="smp"), ["11", "12"])
    assert sge[sge.index("-hold_jid") + 1] == "11,12"
    pbs = argv(PBSBackend(), ["11.srv", "12.srv"])
    assert pbs[pbs.index("-W") + 1] == "depend=afterany:11.srv:12.srv"
    lsf = argv(LSFBackend(), ["11", "12[3]"])
    assert lsf[lsf.index("-w") + 1] == "ended(11) && ended(12[3])"
    flux = argv(FluxBackend(), ["ƒ2abc", "ƒ3xyz"])
    assert [flux[i + 1] for i, a in enumerate(flux) if a == "--dependency"] == [
        "afterany:ƒ2abc", "afterany:ƒ3xyz"]
    spec = JobSpec(name="j", commands=["true"], dependencies=["11"])
    lines = SGEBackend(pe="smp").directives(spec, files(tmp_path))
    assert not [line for line in lines if line.startswith("#$ -hold_jid")]
    assert "# (on the qsub command line: -hold_jid 11)" in lines
    spec = JobSpec(name="j", commands=["true"], dependencies=["ƒ2abc"])
    lines = FluxBackend().directives(spec, files(tmp_path))
    assert not [line for line in lines if line.startswith("# flux:") and "--dependency" in line]
    assert "# (on the flux batch command line: --dependency=afterany:ƒ2abc)" in lines
    assert "-W" not in argv(PBSBackend(), []) and "--dependency" not in argv(FluxBackend(), [])


@pytest.mark.parametrize(("backend", "deps", "flags", "ours"), [
    (SlurmBackend(), ["11"], ["--dependency=afterok:5"], "--dependency"),
    (SlurmBackend(), ["11"], ["-d", "afterok:5"], "--dependency"),
    (SGEBackend(pe="smp"), ["11"], ["-hold_jid", "5"], "-hold_jid"),
    (PBSBackend(), ["11.srv"], ["-W", "depend=afterok:5.srv"], "-W depend"),
    (LSFBackend(), ["11"], ["-w", "done(5)"], "-w"),
    (FluxBackend(), ["ƒ2abc"], ["--dependency=afterok:ƒ2"], "--dependency"),
], ids=lambda v: getattr(v, "name", None))
def test_dependency_flag_in_submit_flags_refused(backend: Any, deps: list[str],
                                                 flags: list[str], ours: str,
                                                 tmp_path: Path) -> None:
    spec = JobSpec(name="j", commands=["true"], dependencies=deps, submit_flags=flags)
    with pytest.raises(InvalidJobError) as info:
        backend.submit_argv(spec, files(tmp_path))
    assert str(info.value).startswith(f"{backend.name}: submit flag {flags[0]!r} repeats "
                                      f"'{ours}")


def test_other_pbs_w_attributes_pass(tmp_path: Path) -> None:
    """PBS ``-W`` carries other attributes too: only ``-W depend`` repeats ours."""
    spec = JobSpec(name="j", commands=["true"], dependencies=["11.srv"],
                   submit_flags=["-W", "group_list=proj"])
    assert PBSBackend().submit_argv(spec, files(tmp_path))[-3:-1] == ["-W", "group_list=proj"]


@pytest.mark.parametrize(("kind", "jobid"), [
    (SlurmBackend, "ƒ2abc"), (SlurmBackend, "abc"), (SGEBackend, "myjob"), (SGEBackend, "0"),
    (PBSBackend, "srv.12"), (LSFBackend, "12.srv"), (FluxBackend, "ƒ0OIl"),
], ids=lambda v: getattr(v, "name", v))
def test_id_of_another_form_is_one_error_before_any_command(kind: Any, jobid: str,
                                                            tmp_path: Path) -> None:
    """No scheduler command is needed (none of these is installed for PBS, LSF, Flux):
    the id is refused by its form (a Grid Engine word would be a job *name* pattern),
    and nothing is written."""
    backend = kind(workdir=tmp_path)
    with pytest.raises(InvalidJobError) as info:
        backend.submit("j", ["true"], dependencies=[jobid])
    message = str(info.value)
    assert message.startswith(f"{backend.name}: dependency {jobid!r} is not a job id")
    assert "\n" not in message
    assert not (tmp_path / ".hpc_connect").exists()


def test_ended_dependencies_are_dropped(tmp_path: Path) -> None:
    """A dependency of this backend that ended is met: it is left out (PBS refuses an id
    it forgot); the live one stays. Generated argv only: no PBS here."""
    backend = PBSBackend(workdir=tmp_path)
    spec = JobSpec(name="j", commands=["true"])
    ended, live = (BatchProcess(backend, spec, jobid, files(tmp_path))
                   for jobid in ("12.srv", "13.srv"))
    ended.set_state(JobState.FAILED, 3)
    backend.track([ended, live])
    resolved = backend.resolve_dependencies(spec.with_dependencies(["12.srv", "13.srv"]))
    assert resolved.dependencies == ("13.srv",)
    assert backend.resolve_dependencies(spec.with_dependencies(["12.srv"])).dependencies == ()


def test_ended_dependencies_are_kept_where_the_scheduler_takes_them(tmp_path: Path) -> None:
    """Slurm accepts a dependency on a job that already ended (it is met at once): the id
    is handed on, so the job's record shows what the caller gave (canary submits a batch
    only after its dependencies ended). No scheduler call: the job is this backend's."""
    backend = SlurmBackend(workdir=tmp_path)
    spec = JobSpec(name="j", commands=["true"])
    ended = BatchProcess(backend, spec, "12", files(tmp_path))
    ended.set_state(JobState.FAILED, 3)
    backend.track([ended])
    assert backend.resolve_dependencies(spec.with_dependencies(["12"])).dependencies == ("12",)
    assert backend.queries == 0


# ---- the shell backend ------------------------------------------------------------------
@pytest.fixture
def shell(tmp_path: Path) -> ShellBackend:
    backend = hpc_connect.get_backend("shell", workdir=tmp_path, cancel_grace=1.0)
    assert isinstance(backend, ShellBackend)
    return backend


def test_shell_dependent_starts_after_its_dependency_failed(shell: ShellBackend,
                                                            tmp_path: Path) -> None:
    """B has no process while A runs and starts after A ended, although A failed; C
    (after B) runs after B; waiting on C alone moves the whole chain on."""
    sleep = marker(2)
    a = shell.submit("a", [f"sleep {sleep}", stamp(tmp_path / "a.end"), "exit 3"])
    b = shell.submit("b", [stamp(tmp_path / "b.start"), stamp(tmp_path / "b.end")],
                     dependencies=[a.jobid])
    c = shell.submit("c", [stamp(tmp_path / "c.start")], dependencies=[b.jobid])
    assert wait_until(lambda: processes_with(f"sleep {sleep}"), timeout=30)
    shell.poll_many([a, b, c])
    assert a.state is JobState.RUNNING
    assert b.state is JobState.PENDING and c.state is JobState.PENDING
    assert b.jobid.startswith("dependent-") and not (tmp_path / "b.start").exists()
    assert c.wait(timeout=60) == 0
    assert a.state is JobState.FAILED and a.returncode == 3
    assert b.state is JobState.COMPLETED and b.jobid.startswith("dependent-")
    assert when(tmp_path / "a.end") <= when(tmp_path / "b.start")
    assert when(tmp_path / "b.end") <= when(tmp_path / "c.start")


def test_shell_cancel_waiting_job_and_cancelled_dependency(shell: ShellBackend,
                                                          tmp_path: Path) -> None:
    """Cancelling a waiting job marks it cancelled and it never starts, even once its
    dependency ended; a job whose dependency was cancelled still runs (afterany)."""
    sleep = marker()
    a = shell.submit("a", [f"sleep {sleep}"])
    b = shell.submit("b", [f"touch {tmp_path}/b.ran"], dependencies=[a.jobid])
    c = shell.submit("c", [f"touch {tmp_path}/c.ran"], dependencies=[a.jobid])
    b.cancel()
    assert b.state is JobState.CANCELLED and b.reason == "cancelled by user"
    assert wait_until(lambda: processes_with(f"sleep {sleep}"), timeout=30)
    a.cancel()
    assert a.state is JobState.CANCELLED and not processes_with(f"sleep {sleep}")
    assert c.wait(timeout=30) == 0 and (tmp_path / "c.ran").exists()
    shell.poll_many([a, b, c])
    assert b.state is JobState.CANCELLED and not (tmp_path / "b.ran").exists()
    assert shell.live_processes() == []


def test_shell_unknown_dependency_is_one_error(shell: ShellBackend, tmp_path: Path) -> None:
    """An id that is no shell job id at all (not a pid, not this backend's pending job):
    ``InvalidJobError`` naming it, nothing written or started."""
    for jobid in ("dependent-9999", "abc"):
        with pytest.raises(InvalidJobError) as info:
            shell.submit("x", [f"touch {tmp_path}/x.ran"], dependencies=[jobid])
        message = str(info.value)
        assert message.startswith(f"shell: dependency {jobid!r} is not a job of this backend")
        assert "\n" not in message
    assert not (tmp_path / ".hpc_connect").exists() and shell.live_processes() == []


def test_shell_waits_for_another_process_job(shell: ShellBackend, tmp_path: Path) -> None:
    """A dependency on a shell job another backend object (or process: canary submits
    dependent batches from other processes) started: the job starts once that process
    has ended; a pid that no longer lives is already met."""
    other = ShellBackend(workdir=tmp_path / "other")
    foreign = other.submit("foreign", [f"sleep 3; date +%s.%N > {tmp_path}/a.end"])
    waiting = shell.submit("b", [f"date +%s.%N > {tmp_path}/b.start"],
                           dependencies=[foreign.jobid])
    assert foreign.wait(timeout=60) == 0 and waiting.wait(timeout=60) == 0
    assert float((tmp_path / "b.start").read_text()) >= float((tmp_path / "a.end").read_text())
    gone = shell.submit("c", ["true"], dependencies=[foreign.jobid])  # its pid has ended
    assert gone.wait(timeout=60) == 0


def test_shell_dependency_on_an_attached_job(shell: ShellBackend, tmp_path: Path) -> None:
    """A job another backend object started, re-attached here, is a dependency like ours."""
    first = ShellBackend(workdir=tmp_path / "first")
    a = first.submit("a", ["sleep 1.5", stamp(tmp_path / "a.end")])
    attached = shell.attach(first.job_ref(a))
    b = shell.submit("b", [stamp(tmp_path / "b.start")], dependencies=[attached.jobid])
    assert b.state is JobState.PENDING
    assert b.wait(timeout=30) == 0
    assert when(tmp_path / "a.end") <= when(tmp_path / "b.start")
    assert a.wait(timeout=30) == 0


def test_shell_second_generation(shell: ShellBackend, tmp_path: Path) -> None:
    """``submission_manager().submit(spec.with_dependencies([jobid]))``, as canary calls
    it (an empty list too): the dependent's future gets its id at once and starts only
    after the dependency ended."""
    mgr = shell.submission_manager()
    fa = mgr.submit(JobSpec("a", ["sleep 1", stamp(tmp_path / "a.end")]))
    fb = mgr.submit(JobSpec("b", [stamp(tmp_path / "b.start")]).with_dependencies([fa.jobid]))
    fe = mgr.submit(JobSpec("e", ["true"]).with_dependencies([]))
    ids: list[str] = []
    dependency_done_at_start: list[bool] = []
    fb.add_jobid_callback(lambda f: ids.append(f.jobid))
    fb.add_jobstart_callback(lambda f: dependency_done_at_start.append(fa.proc.done))
    assert fb.result(timeout=30) == 0 and fa.result(timeout=30) == 0
    assert fe.result(timeout=30) == 0
    assert ids == [fb.jobid] and dependency_done_at_start == [True]
    assert when(tmp_path / "a.end") <= when(tmp_path / "b.start")


def test_shell_waiting_job_never_outlives_its_python(tmp_path: Path) -> None:
    """A script that exits with a running job and one waiting on it: the running one is
    cancelled at exit, the waiting one never starts; no process is left."""
    first, second = marker(), marker()
    script = (f"import hpc_connect\n"
              f"b = hpc_connect.get_backend('shell', cancel_grace=1.0)\n"
              f"a = b.submit('a', ['sleep {first}'])\n"
              f"b.submit('c', ['sleep {second}'], dependencies=[a.jobid])\n"
              f"import helpers\n"
              f"assert helpers.wait_until(lambda: helpers.processes_with('sleep {first}'))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)},
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert not processes_with(f"sleep {first}") and not processes_with(f"sleep {second}")


# ---- Slurm ------------------------------------------------------------------------------
@pytest.fixture
def slurm(slurm_cluster: str, tmp_path: Path) -> SlurmBackend:
    backend = hpc_connect.get_backend("slurm", polling_interval=0.5, workdir=tmp_path,
                                      retry_delay=0.2)
    assert isinstance(backend, SlurmBackend)
    return backend


def squeue(jobid: str, field: str) -> str:
    return subprocess.run(["squeue", "--noheader", "--states=all", f"--jobs={jobid}",
                           f"--format={field}"], capture_output=True, text=True,
                          timeout=60).stdout.strip()


@pytest.mark.slurm
def test_slurm_dependent_starts_after_its_dependency_failed(slurm: SlurmBackend,
                                                            tmp_path: Path) -> None:
    """B waits (Slurm's reason: Dependency) and runs once A ended, although A exited 3."""
    a = slurm.submit("dep-a", ["sleep 3", stamp(tmp_path / "a.end"), "exit 3"])
    b = slurm.submit("dep-b", [stamp(tmp_path / "b.start")], dependencies=[a.jobid])
    assert wait_until(lambda: squeue(b.jobid, "%r") == "Dependency", timeout=30)
    assert not (tmp_path / "b.start").exists()
    assert b.wait(timeout=120) == 0 and b.state is JobState.COMPLETED
    assert a.wait(timeout=60) == 3 and a.state is JobState.FAILED
    assert when(tmp_path / "a.end") <= when(tmp_path / "b.start")


@pytest.mark.slurm
def test_slurm_second_generation(slurm: SlurmBackend, tmp_path: Path) -> None:
    """canary's call: ``mgr.submit(spec.with_dependencies([fa.jobid]))``, and ``[]``."""
    mgr = slurm.submission_manager()
    fa = mgr.submit(JobSpec("g-a", ["sleep 2", stamp(tmp_path / "a.end")]))
    fb = mgr.submit(JobSpec("g-b", [stamp(tmp_path / "b.start")])
                    .with_dependencies([fa.jobid]))
    fe = mgr.submit(JobSpec("g-e", ["true"]).with_dependencies([]))
    assert fb.result(timeout=120) == 0 and fa.result(timeout=60) == 0
    assert fe.result(timeout=120) == 0
    assert when(tmp_path / "a.end") <= when(tmp_path / "b.start")


@pytest.mark.slurm
def test_slurm_foreign_and_unknown_ids(slurm: SlurmBackend, tmp_path: Path) -> None:
    """A job of another backend object is looked up in squeue and waited for; an id Slurm
    has no record of (sbatch would ignore it and start the job at once) is one
    ``InvalidJobError`` naming it, and nothing is queued."""
    other = hpc_connect.get_backend("slurm", workdir=tmp_path, retry_delay=0.2)
    f = other.submit("dep-foreign", ["sleep 2", stamp(tmp_path / "f.end")])
    b = slurm.submit("dep-on-foreign", [stamp(tmp_path / "b.start")], dependencies=[f.jobid])
    name = f"dep-unknown-{uuid.uuid4().hex[:8]}"
    with pytest.raises(InvalidJobError) as info:
        slurm.submit(name, ["true"], dependencies=["99999999"])
    message = str(info.value)
    assert message.startswith("slurm: dependency '99999999': the scheduler has no record")
    assert "\n" not in message
    assert b.wait(timeout=120) == 0 and f.wait(timeout=60) == 0
    assert when(tmp_path / "f.end") <= when(tmp_path / "b.start")
    names = subprocess.run(["squeue", "--me", "--noheader", "--states=all", "--format=%j"],
                           capture_output=True, text=True, timeout=60).stdout.split()
    assert name not in names


# ---- Grid Engine ------------------------------------------------------------------------
@pytest.fixture
def sge(sge_cluster: str, tmp_path: Path) -> SGEBackend:
    backend = hpc_connect.get_backend("sge", polling_interval=0.5, workdir=tmp_path,
                                      retry_delay=0.2)
    assert isinstance(backend, SGEBackend)
    return backend


def qstat() -> dict[str, str]:
    listed = subprocess.run(["qstat", "-xml", "-u", "*"], capture_output=True, text=True,
                            timeout=60)
    return parse_qstat_xml(listed.stdout)


@pytest.mark.sge
def test_sge_dependent_starts_after_its_dependency_failed(sge: SGEBackend,
                                                          tmp_path: Path) -> None:
    """B is held (``hqw``) and runs once A ended, although A exited 3."""
    a = sge.submit("dep-a", ["sleep 3", stamp(tmp_path / "a.end"), "exit 3"])
    b = sge.submit("dep-b", [stamp(tmp_path / "b.start")], dependencies=[a.jobid])
    assert wait_until(lambda: qstat().get(b.jobid) == "hqw", timeout=30)
    assert not (tmp_path / "b.start").exists()
    assert b.wait(timeout=120) == 0 and b.state is JobState.COMPLETED
    assert a.wait(timeout=60) == 3 and a.state is JobState.FAILED
    assert when(tmp_path / "a.end") <= when(tmp_path / "b.start")


@pytest.mark.sge
def test_sge_foreign_and_unknown_ids(sge: SGEBackend, tmp_path: Path) -> None:
    """A job of another backend object that already left qstat is found in qacct (its
    dependency is met); an id Grid Engine never had (qsub would ignore it) is one
    ``InvalidJobError`` naming it, and nothing is queued."""
    other = hpc_connect.get_backend("sge", workdir=tmp_path, retry_delay=0.2)
    f = other.submit("dep-foreign", ["true"])
    assert f.wait(timeout=60) == 0
    assert wait_until(lambda: f.jobid not in qstat(), timeout=30)
    b = sge.submit("dep-on-foreign", ["true"], dependencies=[f.jobid])
    with pytest.raises(InvalidJobError) as info:
        sge.submit("dep-unknown", ["true"], dependencies=["99999999"])
    message = str(info.value)
    assert message.startswith("sge: dependency '99999999': the scheduler has no record")
    assert "\n" not in message
    assert b.wait(timeout=60) == 0  # (its exit-status file may come before qstat forgets it)
    assert wait_until(lambda: jobs_under(tmp_path) == [], timeout=30, interval=0.5)
