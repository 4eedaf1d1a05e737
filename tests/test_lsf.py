"""LSF backend tests. No real LSF runs here: scripts are rendered and run, ``bjobs``
output is the recorded format in tests/fixtures/lsf (see its README), and
``bsub``/``bjobs``/``bkill`` are fake executables first on PATH that log their argv."""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from fixtures.fakebin import FakeBin, fixture

from hpc_connect import HPCProcess
from hpc_connect.builtin_backends.lsf import LSFBackend
from hpc_connect.errors import SubmitError
from hpc_connect.job import JobSpec
from hpc_connect.process import JobState
from hpc_connect.registry import BACKEND_LAUNCHERS, find_backend_class
from hpc_connect.script import JobFiles, render_script

ODD = "it's a \"job\" $(touch pwned) `x`"


def backend(tmp_path: Path, **kw: object) -> LSFBackend:
    kw.setdefault("polling_interval", 0.001)  # the scheduler is asked on every poll
    return LSFBackend(workdir=tmp_path, retry_delay=0.001, lost_grace=0, **kw)  # type: ignore[arg-type]


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
    """No real LSF here. Checks registry names and the jsrun launcher agree."""
    assert find_backend_class("lsf") is LSFBackend is find_backend_class("bsub")
    assert LSFBackend.launcher == BACKEND_LAUNCHERS["lsf"] == "jsrun"


def test_options_exact_and_script_runs_literally(tmp_path: Path) -> None:
    """No real LSF here. Checks exact #BSUB lines and bsub argv (name literal, script
    path shell-quoted because bsub hands its command to /bin/sh), and that the script
    runs the commands literally and records the exit code when started the LSF way."""
    spec = JobSpec(name=ODD, commands=["printf '%s\\n' " + shlex.quote(ODD), "exit 5"],
                   qtime=61, nodes=2, gpus=4, memory_mb=2048, workdir=tmp_path,
                   output=tmp_path / "my dir" / "o.txt", error=tmp_path / "my dir" / "e.txt")
    files = JobFiles.for_spec(spec, tmp_path / "my dir", "00001-x")
    b = backend(tmp_path)
    o, e = str(files.output), str(files.error)
    assert b.directives(spec, files) == [
        f"#BSUB -J {shlex.quote(ODD)}", "#BSUB -nnodes 2", "#BSUB -gpu num=2", "#BSUB -W 2",
        "#BSUB -M 2048MB", f"#BSUB -oo '{o}'", f"#BSUB -eo '{e}'"]
    argv = b.submit_argv(spec, files)
    assert argv == ["bsub", "-J", ODD, "-nnodes", "2", "-gpu", "num=2", "-W", "2",
                    "-M", "2048MB", "-oo", o, "-eo", e, shlex.quote(str(files.script))]
    assert backend(tmp_path, nnodes=False).options(spec, files)[1:3] == [
        ("-n", "2"), ("-R", "span[hosts=2]")]
    files.script.parent.mkdir(parents=True)
    files.script.write_text(render_script(spec, files, directives=b.directives(spec, files)))
    files.script.chmod(0o755)
    run = subprocess.run(["sh", "-c", argv[-1]], capture_output=True, text=True, timeout=30)
    assert (run.returncode, run.stdout) == (5, ODD + "\n")
    assert files.read_exitcode() == 5 and not (tmp_path / "pwned").exists()


def test_parse_recorded_bjobs_json(tmp_path: Path) -> None:
    """No real LSF here. Checks STAT values, EXIT_CODE, TERM_RUNLIMIT → timed out,
    TERM_OWNER → cancelled, and ERROR records (unknown ids) skipped."""
    b = backend(tmp_path)
    running = b.parse_status(fixture("lsf", "bjobs_running.json"))
    assert [running[f"200{i}"].state for i in range(1, 5)] == [
        JobState.RUNNING, JobState.PENDING, JobState.RUNNING, JobState.PENDING]
    done = b.parse_status(fixture("lsf", "bjobs_finished.json"))
    assert {k: (s.state, s.returncode) for k, s in done.items()} == {
        "2001": (JobState.COMPLETED, 0), "2002": (JobState.FAILED, 3),
        "2003": (JobState.TIMED_OUT, 140), "2004": (JobState.CANCELLED, 130)}
    assert done["2003"].reason.startswith("TERM_RUNLIMIT")
    assert b.parse_jobid(fixture("lsf", "bsub.out")) == "2001"
    with pytest.raises(SubmitError, match="no 'Job <id> is submitted' in bsub output"):
        b.parse_jobid("Request aborted by esub. Job not submitted.\n")


def test_flow_one_bjobs_per_cycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No real LSF here: fake bsub runs the command line with sh (as LSF does) and
    prints the recorded confirmation; fake bjobs prints recorded JSON. Checks one bjobs
    for all jobs per cycle, final states, exit codes and reasons; the unknown id 2005
    finishes from its own exit-code file."""
    fake = FakeBin(tmp_path, monkeypatch)
    fake.respond("bsub", {"stdout": "Job <{n}> is submitted to queue <normal>.\n"},
                 run="sh -c")
    b = backend(tmp_path)
    names = [("ok", "true"), ("three", "exit 3"), ("slow", "true"), ("killed", "true"),
             ("gone", "exit 6")]
    procs = [b.submit(n, [c]) for n, c in names]
    ids = [p.jobid for p in procs]
    assert ids == ["1001", "1002", "1003", "1004", "1005"]
    show = hide_status_files(procs)
    shift = {f"200{i}": f"100{i}" for i in range(1, 6)}

    def recorded(name: str) -> str:
        text = fixture("lsf", name)
        for old, new in shift.items():
            text = text.replace(old, new)
        return text

    fake.respond("bjobs", {"stdout": recorded("bjobs_running.json").replace(
        '"JOBS":4', '"JOBS":5').replace("  ]", '  ,{"JOBID":"1005","STAT":"PEND",'
                                        '"EXIT_CODE":"","EXIT_REASON":""}]')})
    b.poll_many(procs)
    assert [p.state for p in procs] == [JobState.RUNNING, JobState.PENDING, JobState.RUNNING,
                                        JobState.PENDING, JobState.PENDING]
    show([procs[0], procs[1], procs[4]])  # slow and killed: ended by LSF, no file
    fake.respond("bjobs", {"stdout": recorded("bjobs_finished.json"), "rc": 255})
    b.poll_many(procs)
    assert [(p.state, p.returncode) for p in procs] == [
        (JobState.COMPLETED, 0), (JobState.FAILED, 3), (JobState.TIMED_OUT, 140),
        (JobState.CANCELLED, 130), (JobState.FAILED, 6)]
    assert "TERM_OWNER" in procs[3].reason
    query = ["bjobs", "-o", "jobid stat exit_code exit_reason", "-json", "-a"]
    assert fake.calls("bjobs") == [[*query, *ids], [*query, *ids[2:4]]]  # others: their files


def test_cancel_one_bkill_and_transient_submit(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """No real LSF here. Checks a transient bsub error is retried, and cancel runs ONE
    bkill with every id."""
    fake = FakeBin(tmp_path, monkeypatch)
    fake.respond("bsub", {"rc": 255, "stderr": "Cannot connect to LSF. Please wait ...\n"},
                 {"stdout": "Job <{n}> is submitted to queue <normal>.\n"})
    fake.respond("bjobs", {"rc": 255, "stderr": "No job found\n"})  # find_submitted: none
    b = backend(tmp_path)
    procs = [b.submit(f"j{i}", ["true"]) for i in range(3)]
    assert [p.jobid for p in procs] == ["1002", "1003", "1004"]
    fake.respond("bkill", {"stdout": "Job <1002> is being terminated\n"})
    b.cancel_many(procs)
    assert fake.calls("bkill") == [["bkill", "1002", "1003", "1004"]]
    assert all(p.state is JobState.CANCELLED for p in procs)


def test_lost_submit_reply_found_not_resubmitted(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """No real LSF here. bsub queues the job but reports it cannot connect: ``bjobs -a
    -o "jobid command" -json`` (the recorded layout of tests/fixtures/lsf, with the
    COMMAND field) shows a job whose command is our script, so that id is used and bsub
    is not run again; an unreadable listing never leads to a blind resubmission."""
    fake = FakeBin(tmp_path, monkeypatch)
    script = tmp_path / "lost job.sh"
    down = {"rc": 255, "stderr": "Cannot connect to LSF. Please wait ...\n"}
    fake.respond("bsub", down)
    records = [{"JOBID": "2001", "COMMAND": "/home/alice/other.sh"},
               {"JOBID": "2002", "COMMAND": shlex.quote(str(script))}]
    fake.respond("bjobs", {"stdout": json.dumps({"COMMAND": "bjobs", "JOBS": 2,
                                                 "RECORDS": records})})
    proc = backend(tmp_path).submit("lost", ["true"], scriptname=script)
    assert proc.jobid == "2002" and len(fake.calls("bsub")) == 1
    assert fake.calls("bjobs") == [["bjobs", "-a", "-o", "jobid command", "-json"]]
    fake.respond("bsub", down)
    fake.respond("bjobs", {"rc": 255, "stderr": "Cannot connect to LSF. Please wait ...\n"})
    with pytest.raises(SubmitError, match="the queue could not be checked"):
        backend(tmp_path, retries=1).submit("lost2", ["true"])
    assert len(fake.calls("bsub")) == 2  # one per submission, none repeated
