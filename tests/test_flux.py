"""Flux backend tests. No real Flux runs here: scripts are rendered and run, ``flux
jobs --json`` output is the recorded format in tests/fixtures/flux (see its README),
and ``flux`` is a fake executable first on PATH that logs its argv."""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from fixtures.fakebin import FakeBin, fixture

from hpc_connect import HPCProcess
from hpc_connect.builtin_backends.flux import FluxBackend, f58_encode, parse_id
from hpc_connect.errors import SubmitError
from hpc_connect.job import JobSpec
from hpc_connect.process import JobState
from hpc_connect.registry import BACKEND_LAUNCHERS, find_backend_class
from hpc_connect.script import JobFiles, render_script

ODD = "it's a \"job\" $(touch pwned) `x`"
IDS = [6731191091817518 + i * 1000003 for i in range(5)]


def backend(tmp_path: Path) -> FluxBackend:
    # polling_interval: the scheduler is asked on every poll
    return FluxBackend(workdir=tmp_path, retry_delay=0.001, lost_grace=0, polling_interval=0.001)


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


def test_registry_and_f58() -> None:
    """No real Flux here. Checks registry names, and F58 ids against flux-core's test
    vector 6731191091817518 = ƒuZZybuNNy (ASCII fuZZybuNNy)."""
    assert find_backend_class("flux") is FluxBackend
    assert FluxBackend.launcher == BACKEND_LAUNCHERS["flux"] == "flux-run"
    assert f58_encode(6731191091817518) == "uZZybuNNy"
    assert parse_id("ƒuZZybuNNy") == parse_id("fuZZybuNNy") == parse_id("6731191091817518")
    with pytest.raises(ValueError, match="not a flux job id: 'f0O'"):
        parse_id("f0O")


def test_directives_exact_and_script_runs_literally(tmp_path: Path) -> None:
    """No real Flux here. Checks exact '# flux:' lines (shell-quoted, as flux parses
    them), the flux batch argv, and that the script runs the commands literally."""
    spec = JobSpec(name=ODD, commands=["printf '%s\\n' " + shlex.quote(ODD), "exit 9"],
                   qtime=90.5, nodes=2, cpus=8, gpus=4, workdir=tmp_path)
    files = JobFiles.for_spec(spec, tmp_path / "my dir", "00001-x")
    b = backend(tmp_path)
    out = str(files.output)
    assert b.directives(spec, files) == [
        f"# flux: --job-name {shlex.quote(ODD)}", "# flux: -N 2", "# flux: -n 4",
        "# flux: -g 1", "# flux: -c 2", "# flux: -t 91s", f"# flux: --output '{out}'"]
    assert b.submit_argv(spec, files) == [
        "flux", "batch", "--job-name", ODD, "-N", "2", "-n", "4", "-g", "1", "-c", "2",
        "-t", "91s", "--output", out, str(files.script)]
    plain = JobSpec(name="p", commands=["true"])
    assert b.options(plain, files)[1] == ("-n", "1")  # flux batch needs -n or -N
    files.script.parent.mkdir(parents=True)
    files.script.write_text(render_script(spec, files, directives=b.directives(spec, files)))
    run = subprocess.run(["bash", str(files.script)], capture_output=True, text=True, timeout=30)
    assert (run.returncode, run.stdout) == (9, ODD + "\n")
    assert files.read_exitcode() == 9 and not (tmp_path / "pwned").exists()


def test_parse_recorded_flux_jobs_json(tmp_path: Path) -> None:
    """No real Flux here. Checks states, results, returncodes and exception notes in
    the recorded multi-job and single-job (one object) JSON shapes."""
    b = backend(tmp_path)
    running = b.parse_status(fixture("flux", "flux_jobs_running.json"))
    assert [running[str(i)].state for i in IDS[:4]] == [
        JobState.RUNNING, JobState.PENDING, JobState.RUNNING, JobState.PENDING]
    done = b.parse_status(fixture("flux", "flux_jobs_finished.json"))
    assert [(done["ƒ" + f58_encode(i)].state, done["f" + f58_encode(i)].returncode)
            for i in IDS[:4]] == [(JobState.COMPLETED, 0), (JobState.FAILED, 3),
                                  (JobState.TIMED_OUT, -9), (JobState.CANCELLED, -128)]
    assert "resource allocation expired" in done[str(IDS[2])].reason
    single = b.parse_status(fixture("flux", "flux_jobs_single.json"))
    assert single["ƒuZZybuNNy"].state is JobState.COMPLETED
    assert b.parse_status("") == {}
    assert b.parse_jobid(fixture("flux", "flux_batch.out")) == "ƒuZZybuNNy"
    with pytest.raises(SubmitError, match="no job id in flux batch output"):
        b.parse_jobid("flux-batch: ERROR: No such file or directory\n")


def test_flow_one_flux_jobs_per_cycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No real Flux here: fake 'flux batch' runs each script with bash and prints
    recorded F58 ids; fake 'flux jobs' prints recorded JSON. Checks ONE flux jobs call
    for all jobs per cycle, states, exit codes, reasons, a left-out id finishing from
    its exit-code file, and ONE flux cancel with every id."""
    fake = FakeBin(tmp_path, monkeypatch)
    fake.respond("flux-batch", *({"stdout": "ƒ" + f58_encode(i) + "\n"} for i in IDS),
                 run="bash")
    b = backend(tmp_path)
    procs = [b.submit(n, [c]) for n, c in (("ok", "true"), ("three", "exit 3"),
                                            ("slow", "true"), ("killed", "true"),
                                            ("gone", "exit 2"))]
    ids = [p.jobid for p in procs]
    show = hide_status_files(procs[:4])
    fake.respond("flux-jobs", {"stdout": fixture("flux", "flux_jobs_running.json")})
    b.poll_many(procs)
    assert [p.state for p in procs[:4]] == [JobState.RUNNING, JobState.PENDING,
                                            JobState.RUNNING, JobState.PENDING]
    assert procs[4].state is JobState.FAILED and procs[4].returncode == 2  # from its file
    show(procs[:2])  # slow and killed: ended by Flux, no file
    fake.respond("flux-jobs", {"stdout": fixture("flux", "flux_jobs_finished.json")})
    b.poll_many(procs)
    assert [(p.state, p.returncode) for p in procs[:4]] == [
        (JobState.COMPLETED, 0), (JobState.FAILED, 3), (JobState.TIMED_OUT, -9),
        (JobState.CANCELLED, -128)]
    assert fake.calls("flux-jobs") == [["flux-jobs", "jobs", "-a", "--json", *ids[:4]],
                                       ["flux-jobs", "jobs", "-a", "--json", *ids[2:4]]]
    fake.respond("flux-batch", {"rc": 1, "stderr": "flux-batch: ERROR: Resource "
                                "temporarily unavailable\n"}, {"stdout": "ƒuZZybuNNy\n"})
    more = [b.submit("x", ["true"]), b.submit("y", ["true"])]
    assert len(fake.calls("flux-batch")) == 5 + 3  # one transient failure retried
    fake.respond("flux-cancel", {})
    b.cancel_many(more)
    assert fake.calls("flux-cancel") == [["flux-cancel", "cancel", *(p.jobid for p in more)]]
    assert json.loads(fixture("flux", "flux_jobs_single.json"))["id"] == IDS[0]


def test_lost_submit_reply_found_not_resubmitted(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """No real Flux here. flux batch queues the job but fails: ``flux jobs -a --json``
    (recorded layout) shows a job of that name and working directory submitted after the
    script was written, so that id is used; an older job of the same name is not taken,
    and flux batch is not run again."""
    import time

    fake = FakeBin(tmp_path, monkeypatch)
    monkeypatch.chdir(tmp_path)
    fake.respond("flux-batch", {"rc": 1, "stderr": "flux-batch: ERROR: Connection refused\n"})
    jobs = json.loads(fixture("flux", "flux_jobs_running.json"))["jobs"]
    old, new = dict(jobs[0]), dict(jobs[1])
    old.update(name="lost", cwd=str(tmp_path), t_submit=time.time() - 3600)
    new.update(name="lost", cwd=str(tmp_path), t_submit=time.time() + 1)
    fake.respond("flux-jobs", {"stdout": json.dumps({"jobs": [old, new]})})
    proc = backend(tmp_path).submit("lost", ["true"])
    assert proc.jobid == str(new["id"])
    assert len(fake.calls("flux-batch")) == 1 and len(fake.calls("flux-jobs")) == 1
