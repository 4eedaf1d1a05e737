"""PBS backend tests. No real PBS runs here: scripts are rendered and run with bash,
``qstat`` output is the recorded format in tests/fixtures/pbs (see its README), and
``qsub``/``qstat``/``qdel`` are fake executables first on PATH that log their argv."""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from fixtures.fakebin import FakeBin, fixture

import hpc_connect
from hpc_connect import HPCProcess
from hpc_connect.builtin_backends.pbs import PBSBackend, parse_qstat_text
from hpc_connect.errors import ConfigError, SubmitError
from hpc_connect.job import JobSpec
from hpc_connect.process import JobState
from hpc_connect.registry import BACKEND_LAUNCHERS, BACKENDS, find_backend_class
from hpc_connect.script import JobFiles, render_script

ODD = "it's a \"job\" $(touch pwned) `x`"


def backend(tmp_path: Path, **kw: object) -> PBSBackend:
    kw.setdefault("polling_interval", 0.001)  # the scheduler is asked on every poll
    return PBSBackend(workdir=tmp_path, retry_delay=0.001, lost_grace=0, **kw)  # type: ignore[arg-type]


def hide_status_files(procs: list[HPCProcess]) -> Callable[[list[HPCProcess]], None]:
    """The fake submit ran each script at once, so its exit-status file exists and the
    fast path would finish the job without a query; hide the files (as for jobs that
    have not run yet) and return the function that shows them again."""
    for p in procs:
        p.files.exitcode.rename(p.files.exitcode.with_suffix(".hidden"))  # type: ignore[attr-defined]

    def show(again: list[HPCProcess]) -> None:
        for p in again:
            p.files.exitcode.with_suffix(".hidden").rename(p.files.exitcode)  # type: ignore[attr-defined]
    return show


def test_registry_names() -> None:
    """No real PBS here. Checks the registry names and class attributes agree, and that
    the name "torque" gives the Torque flavor without further options."""
    for name in ("pbs", "qsub"):
        assert find_backend_class(name) is PBSBackend and PBSBackend.matches(name)
    assert BACKENDS["pbs"].endswith(":PBSBackend")
    assert PBSBackend.launcher == BACKEND_LAUNCHERS["pbs"] == "mpi"
    assert hpc_connect.get_backend("torque").flavor == "torque"  # type: ignore[attr-defined]
    assert hpc_connect.get_backend("pbs").flavor == "pro"  # type: ignore[attr-defined]


def test_directives_exact_and_script_runs_literally(tmp_path: Path) -> None:
    """No real PBS here. Checks the exact #PBS lines, the qsub argv, and that bash runs
    the rendered script's commands literally and writes the exit-code file."""
    spec = JobSpec(name=ODD, commands=["printf '%s\\n' " + shlex.quote(ODD), "exit 7"],
                   qtime=3661.2, nodes=2, cpus=6, gpus=2, tasks=4, memory_mb=1000,
                   workdir=tmp_path, submit_flags=["-q", "debug"])
    files = JobFiles.for_spec(spec, tmp_path / "my dir", "00001-x")
    b = backend(tmp_path)
    out = str(files.output)
    assert b.directives(spec, files) == [
        "#PBS -N it_s_a__job____touch_pwned___x_",
        "#PBS -l select=2:ncpus=3:ngpus=1:mpiprocs=2:mem=1000mb",
        "#PBS -l walltime=01:01:02",
        f"#PBS -o '{out}'", "#PBS -j oe", "#PBS -V"]
    assert b.submit_argv(spec, files) == [
        "qsub", "-N", "it_s_a__job____touch_pwned___x_", "-l",
        "select=2:ncpus=3:ngpus=1:mpiprocs=2:mem=1000mb", "-l", "walltime=01:01:02",
        "-o", out, "-j", "oe", "-V", "-q", "debug", str(files.script)]
    files.script.parent.mkdir(parents=True)
    files.script.write_text(render_script(spec, files, directives=b.directives(spec, files)))
    run = subprocess.run(["bash", str(files.script)], capture_output=True, text=True, timeout=30)
    assert run.returncode == 7 and run.stdout == ODD + "\n"
    assert files.read_exitcode() == 7
    assert not (tmp_path / "pwned").exists()


def test_torque_flavor_directives(tmp_path: Path) -> None:
    """No real Torque here. Checks nodes=N:ppn=C, separate -e, and the text qstat argv."""
    spec = JobSpec(name="t", commands=["true"], nodes=2, cpus=8, gpus=2, memory_mb=512,
                   output=tmp_path / "o.txt", error=tmp_path / "e.txt")
    files = JobFiles.for_spec(spec, tmp_path, "k")
    b = backend(tmp_path, flavor="torque", export_env=False)
    assert b.directives(spec, files) == [
        "#PBS -N t", "#PBS -l nodes=2:ppn=4:gpus=1", "#PBS -l mem=512mb",
        f"#PBS -o {tmp_path}/o.txt", f"#PBS -e {tmp_path}/e.txt"]
    assert b.status_argv(["1", "2"]) == ["qstat", "-f", "1", "2"]
    with pytest.raises(ConfigError, match="flavor='slurm'"):
        PBSBackend(flavor="slurm")


def test_parse_recorded_qstat_json(tmp_path: Path) -> None:
    """No real PBS here. Checks job_state letters and Exit_status conventions
    (0, 3, -29 walltime, 271 = 256 + SIGTERM) in recorded qstat -F json output."""
    b = backend(tmp_path)
    running = b.parse_status(fixture("pbs", "qstat_running.json"))
    assert [running[f"100{i}.pbs-server"].state for i in range(1, 5)] == [
        JobState.RUNNING, JobState.PENDING, JobState.RUNNING, JobState.PENDING]
    assert running["1001"].state is JobState.RUNNING  # shorter prefix of the id
    done = b.parse_status(fixture("pbs", "qstat_finished.json"))
    got = {k: (s.state, s.returncode) for k, s in done.items() if k.endswith("pbs-server")}
    assert got == {"1001.pbs-server": (JobState.COMPLETED, 0),
                   "1002.pbs-server": (JobState.FAILED, 3),
                   "1003.pbs-server": (JobState.TIMED_OUT, None),
                   "1004.pbs-server": (JobState.CANCELLED, -15)}
    assert "walltime" in done["1003.pbs-server"].reason
    assert "SIGTERM" in done["1004.pbs-server"].reason


def test_parse_recorded_torque_text(tmp_path: Path) -> None:
    """No real Torque here. Checks the qstat -f text parser (continuation lines,
    lowercase exit_status, state C) and 271 past the walltime → TIMED_OUT."""
    jobs = parse_qstat_text(fixture("pbs", "torque_qstat_f.txt"))
    assert jobs["1001.torque-server.example.org"]["Variable_List"].endswith("SHELL=/bin/bash")
    done = backend(tmp_path, flavor="torque").parse_status(fixture("pbs", "torque_qstat_f.txt"))
    assert [(done[f"100{i}.torque-server"].state) for i in range(1, 5)] == [
        JobState.COMPLETED, JobState.FAILED, JobState.TIMED_OUT, JobState.PENDING]
    with pytest.raises(ValueError, match="unexpected qstat"):
        parse_qstat_text("garbage line\n")


def test_parse_jobid(tmp_path: Path) -> None:
    """No real PBS here. Checks qsub's id line is read and junk is refused clearly."""
    b = backend(tmp_path)
    assert b.parse_jobid(fixture("pbs", "qsub.out")) == "1001.pbs-server"
    with pytest.raises(SubmitError, match="no job id in qsub output 'oops'"):
        b.parse_jobid("oops\n")


def test_flow_one_qstat_per_cycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No real PBS here: fake qsub runs each script with bash and prints the recorded id
    form; fake qstat prints the recorded JSON. Checks one qstat for all jobs per cycle,
    the final states, exit codes (from the scripts' own files) and reasons."""
    fake = FakeBin(tmp_path, monkeypatch)
    fake.respond("qsub", {"stdout": "{n}.pbs-server\n"}, run="bash")
    b = backend(tmp_path)
    procs = [b.submit(n, [c]) for n, c in
             (("ok", "true"), ("three", "exit 3"), ("slow", "sleep 0"), ("killed", "true"))]
    assert [p.jobid for p in procs] == [f"100{i}.pbs-server" for i in range(1, 5)]
    show = hide_status_files(procs)
    fake.respond("qstat", {"stdout": fixture("pbs", "qstat_running.json")})
    b.poll_many(procs)
    assert [p.state for p in procs] == [JobState.RUNNING, JobState.PENDING,
                                        JobState.RUNNING, JobState.PENDING]
    show(procs[:2])  # slow and killed: ended by PBS, no file
    fake.respond("qstat", {"stdout": fixture("pbs", "qstat_finished.json")})
    b.poll_many(procs)
    assert [(p.state, p.returncode) for p in procs] == [
        (JobState.COMPLETED, 0), (JobState.FAILED, 3), (JobState.TIMED_OUT, 1),
        (JobState.CANCELLED, -15)]
    assert procs[1].reason == "exit code 3"
    ids = [p.jobid for p in procs]
    query = ["qstat", "-f", "-F", "json", "-x"]
    assert fake.calls("qstat") == [[*query, *ids], [*query, *ids[2:]]]  # ok, three: files


def test_unknown_ids_do_not_freeze_states(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """No real PBS here. qstat exits 153 naming an id purged from history: the job is
    finished from its own exit-code file instead of the query counting as failed."""
    fake = FakeBin(tmp_path, monkeypatch)
    fake.respond("qsub", {"stdout": "{n}.pbs-server\n"}, run="bash")
    b = backend(tmp_path)
    proc = b.submit("gone", ["exit 4"])
    fake.respond("qstat", {"stdout": "", "stderr": fixture("pbs", "qstat_unknown.stderr")
                           .replace("1005", "1001"), "rc": 153})
    b.poll_many([proc])
    assert (proc.state, proc.returncode) == (JobState.FAILED, 4)


def test_cancel_one_qdel_and_transient_submit(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """No real PBS here. Checks a transient qsub error is retried, a real refusal is
    reported in one line with PBS's words, and cancel runs ONE qdel with every id."""
    fake = FakeBin(tmp_path, monkeypatch)
    fake.respond("qsub", {"rc": 1, "stderr": "qsub: cannot connect to server pbs-server "
                          "(errno=15010)\n"}, {"stdout": "{n}.pbs-server\n"})
    fake.respond("qstat", {"stdout": ""})  # find_submitted: the job was not queued
    b = backend(tmp_path)
    procs = [b.submit(f"j{i}", ["true"]) for i in range(3)]
    assert [p.jobid for p in procs] == ["1002.pbs-server", "1003.pbs-server", "1004.pbs-server"]
    fake.respond("qdel", {})
    b.cancel_many(procs)
    assert fake.calls("qdel") == [["qdel", *[p.jobid for p in procs]]]
    assert all(p.state is JobState.CANCELLED for p in procs)
    fake.respond("qsub", {"rc": 38, "stderr": "qsub: Unknown queue\n"})
    with pytest.raises(SubmitError, match=r"^pbs: qsub refused job 'bad': qsub: Unknown queue$"):
        b.submit("bad", ["true"])


@pytest.mark.parametrize("flavor", ["pro", "torque"])
def test_lost_submit_reply_found_not_resubmitted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 flavor: str) -> None:
    """No real PBS here. qsub queues the job but reports "cannot connect": the full
    ``qstat -f`` listing (recorded JSON with its ``Submit_arguments``; Torque text with
    ``submit_args``) shows a job whose arguments end with our script, so that id is used
    and qsub is not run again. A listing that cannot be read never leads to a blind
    resubmission: the submission fails with both messages, after one qsub."""
    fake = FakeBin(tmp_path, monkeypatch)
    script = tmp_path / "lost job.sh"
    down = {"rc": 1, "stderr": "qsub: cannot connect to server pbs-server (errno=15010)\n"}
    fake.respond("qsub", down)
    if flavor == "pro":
        listing = fixture("pbs", "qstat_running.json").replace(
            '"-N slow /home/alice/run/x.sh"', json.dumps(f"-N lost {shlex.quote(str(script))}"))
    else:
        listing = fixture("pbs", "torque_qstat_f.txt").replace(
            "    Job_Name = slow\n", f"    Job_Name = slow\n    submit_args = -N lost "
            f"{shlex.quote(str(script))}\n")
    fake.respond("qstat", {"stdout": listing})
    proc = backend(tmp_path, flavor=flavor).submit("lost", ["true"], scriptname=script)
    assert proc.jobid.startswith("1003.")
    assert len(fake.calls("qsub")) == 1
    fake.respond("qsub", down)
    fake.respond("qstat", {"rc": 1, "stderr": "qstat: cannot connect to server pbs-server\n"})
    with pytest.raises(SubmitError, match="the queue could not be checked"):
        backend(tmp_path, flavor=flavor, retries=1).submit("lost2", ["true"])
    assert len(fake.calls("qsub")) == 2  # one per submission, none repeated
