"""Sandia's canary (``canary-wm`` 26.10.15, unpatched) on our hpc_connect: its own shipped
examples (``canary/docs/examples``) batched on the shell backend, the real Slurm and the
real Grid Engine end with exactly the totals of the unbatched run; ``canary hpc info``
describes the backend; Ctrl-C on a batched run leaves no job queued and no process.

Some examples fail, diff and time out on purpose: canary exits 14 for the totals it
prints, batched or not.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import venv
from collections.abc import Iterator
from pathlib import Path

import canary
import pytest
from faults import slurm_jobs_under
from helpers import processes_with, wait_until
from sge_jobs import jobs_under

ROOT = Path(__file__).resolve().parent.parent
CLUSTER = ROOT / "tests" / "slurm" / "cluster.sh"
CANARY = Path(sys.executable).parent / "canary"
EXAMPLES = Path(canary.__file__).parent / "docs" / "examples"
TOTALS = re.compile(r"^\s*(\d+ total: [^\n]*?)\s*$", re.MULTILINE)


def run(args: list[str], cwd: Path, timeout: float = 900,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """canary ``args`` in ``cwd``, in a session of its own; on a time-out the whole
    session is killed (canary can hang after an exception in a batch worker)."""
    proc = subprocess.Popen([str(CANARY), *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env=env, stdin=subprocess.DEVNULL)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        raise AssertionError(f"canary {' '.join(args)} still running after {timeout}s:\n"
                             f"{out[-3000:]}") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")


def totals(result: subprocess.CompletedProcess[str]) -> str:
    found = TOTALS.findall(result.stdout)
    assert found, f"no totals line in canary's output (rc {result.returncode}):\n" \
                  f"{result.stdout[-3000:]}"
    return str(found[-1])


def active(folder: Path, env: dict[str, str] | None = None) -> list[str]:
    """Ids of jobs queued or running (on the cluster of ``env``) under ``folder``."""
    listed = subprocess.run(["squeue", "--noheader", "--states=all", "--format=%i|%T|%Z"],
                            capture_output=True, text=True, timeout=60, env=env, check=True)
    return [jobid for jobid, state, workdir in
            (line.split("|", 2) for line in listed.stdout.splitlines())
            if state in ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING")
            and (workdir == str(folder) or workdir.startswith(f"{folder}/"))]


def examples(tmp_path: Path, name: str = "examples") -> Path:
    work = tmp_path / name
    shutil.copytree(EXAMPLES, work)
    return work


@pytest.fixture(scope="module")
def slurm_like_this_machine(slurm_cluster: str) -> Iterator[dict[str, str]]:
    """A one-node Slurm whose node has this machine's CPUs (the shared test cluster claims
    8), so that canary sizes its tests as for an unbatched run here; yields the
    environment that points at it. (It starts after the shared cluster, which keeps the
    munge daemon.)"""
    env = {**os.environ, "HPC_CONNECT_SLURM_DIR": "/tmp/hpc-connect-slurm-canary",
           "HPC_CONNECT_SLURM_PORT": "6857", "HPC_CONNECT_SLURM_CPUS": str(os.cpu_count())}
    started = subprocess.run(["bash", str(CLUSTER), "start"], capture_output=True, text=True,
                             timeout=240, env=env)
    assert started.returncode == 0, started.stderr[-2000:]
    yield {**env, "SLURM_CONF": started.stdout.strip().splitlines()[-1]}
    subprocess.run(["bash", str(CLUSTER), "stop"], capture_output=True, timeout=120, env=env)


@pytest.fixture(scope="module")
def unbatched(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The totals of the unbatched ``canary run .`` on a copy of the examples."""
    result = run(["run", "."], examples(tmp_path_factory.mktemp("unbatched")))
    assert result.returncode == 14, result.stdout[-3000:]
    return totals(result)


def test_unbatched_totals_are_the_examples(unbatched: str) -> None:
    """The examples' own totals (as canary's documentation lists them), so a batched run
    compared with them below compares with something real."""
    assert unbatched == ("76 total: 65 pass, 1 xdiff, 2 xfail, 1 skipped, 1 diffed, "
                         "4 failed, 2 timeout")


def test_batched_on_the_shell_backend(unbatched: str, tmp_path: Path) -> None:
    """canary's tutorial: ``canary run -b backend=shell -b spec=count:4 .``."""
    result = run(["run", "-b", "backend=shell", "-b", "spec=count:4", "."], examples(tmp_path))
    assert "Generated 4 batches" in result.stdout
    assert (result.returncode, totals(result)) == (14, unbatched)


@pytest.mark.slurm
def test_batched_on_slurm(slurm_like_this_machine: dict[str, str], unbatched: str,
                          tmp_path: Path) -> None:
    """Four batches as Slurm jobs (no accounting on this cluster): the same totals, and
    nothing left queued."""
    work = examples(tmp_path)
    env = slurm_like_this_machine
    result = run(["run", "-b", "backend=slurm", "-b", "spec=count:4", "."], work, env=env)
    assert "Generated 4 batches" in result.stdout
    assert (result.returncode, totals(result)) == (14, unbatched)
    assert wait_until(lambda: not active(work, env), timeout=60, interval=0.5)


@pytest.mark.sge
def test_batched_on_grid_engine(sge_cluster: str, unbatched: str, tmp_path: Path) -> None:
    """Four batches as Grid Engine jobs: the same totals, and nothing left queued."""
    work = examples(tmp_path)
    result = run(["run", "-b", "backend=sge", "-b", "spec=count:4", "."], work)
    assert "Generated 4 batches" in result.stdout
    assert (result.returncode, totals(result)) == (14, unbatched)
    assert wait_until(lambda: not jobs_under(work), timeout=60, interval=0.5)


@pytest.mark.slurm
def test_hpc_info_describes_the_slurm_node(slurm_cluster: str, tmp_path: Path) -> None:
    """``canary hpc info slurm`` prints the backend's description: the one node and its
    CPUs, as sinfo reports them."""
    result = run(["hpc", "info", "slurm"], tmp_path, timeout=120)
    assert result.returncode == 0, result.stdout
    sinfo = subprocess.run(["sinfo", "--noheader", "--format=%D|%c"], capture_output=True,
                           text=True, timeout=60, check=True).stdout.split()[0].split("|")
    assert "Name: slurm" in result.stdout and f"Nodes: {sinfo[0]}" in result.stdout
    assert f"cpus per node: {sinfo[1]}" in result.stdout


@pytest.mark.slurm
def test_ctrl_c_on_a_batched_run_leaves_nothing(slurm_cluster: str, tmp_path: Path) -> None:
    """SIGINT (Ctrl-C) to canary while its batches run on Slurm: canary ends, no batch
    job stays queued or running, and no process of the run is left."""
    work = examples(tmp_path)
    proc = subprocess.Popen([str(CANARY), "run", "-b", "backend=slurm", "-b", "spec=count:4",
                             "."], cwd=work, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        assert wait_until(lambda: any(state == "RUNNING" for _, _, state in
                                      slurm_jobs_under(work)), timeout=300, interval=0.5)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert wait_until(lambda: not active(work), timeout=120, interval=0.5), active(work)
    assert wait_until(lambda: not processes_with(str(work)), timeout=60, interval=0.5), \
        processes_with(str(work))


@pytest.mark.slow
def test_fresh_install_keeps_our_hpc_connect(tmp_path: Path) -> None:
    """``pip install . canary-wm==26.10.15`` in a fresh venv keeps this hpc_connect
    (canary requires ``hpc-connect>=26.10.9``: our calendar version meets it), ``pip
    check`` is clean and canary starts."""
    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    python = str(env / "bin" / "python")
    build = tmp_path / "src"  # a copy: the install's build folder stays out of the repo
    shutil.copytree(ROOT, build, ignore=shutil.ignore_patterns(
        ".venv*", "build", ".git", "*.egg-info", ".hpc_connect", "__pycache__"))
    started = time.monotonic()
    subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    "-c", str(ROOT / ".ci" / "constraints.txt"), str(build),
                    "canary-wm==26.10.15"], check=True, timeout=900, capture_output=True)
    shown = subprocess.run([python, "-m", "pip", "show", "hpc-connect"], capture_output=True,
                           text=True, check=True).stdout
    import tomllib

    ours = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert f"Version: {ours}" in shown.splitlines(), (shown, time.monotonic() - started)
    check = subprocess.run([python, "-m", "pip", "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
    version = subprocess.run([str(env / "bin" / "canary"), "--version"], capture_output=True,
                             text=True, timeout=120)
    assert (version.returncode, version.stdout.strip()) == (0, "26.10.15"), version.stderr


@pytest.mark.slurm
def test_depends_on_batched_one_per_test(slurm_like_this_machine: dict[str, str],
                                         tmp_path: Path) -> None:
    """``canary hpc run --backend=slurm --batch-spec=count:max ./depends_on`` (one batch
    per test) gives the unbatched totals, and the dependent batches went to Slurm with
    their dependencies (``--dependency=afterany:`` in their job scripts)."""
    env = slurm_like_this_machine
    work = examples(tmp_path)
    alone = run(["run", "./depends_on"], examples(tmp_path, "unbatched"), env=env)
    batched = run(["hpc", "run", "--backend=slurm", "--batch-spec=count:max", "./depends_on"],
                  work, env=env)
    assert (batched.returncode, totals(batched)) == (alone.returncode, totals(alone))
    scripts = list(work.glob(".canary/sessions/*/hpc.batches/*/*.sh"))
    assert scripts, "no batch job scripts found"
    assert any("#SBATCH --dependency=" in script.read_text() for script in scripts), [
        s.name for s in scripts]
    assert wait_until(lambda: not active(work, env), timeout=60, interval=0.5)
