"""A plugin written for the second generation (tests/gen2_plugin: a ``Backend`` with
``type``, settings, resource specs, a ``SubmissionAdapter`` returning its own
``HPCProcess``, an ``MPIExecAdapter`` launcher) works everywhere: through both API
generations, ``hpc-connect``, ``hpcc``, ``hpc-launch`` and ``snakemake --executor
hpc-connect``."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import processes_with, wait_until

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.fixture
def plugin_env(tmp_path: Path) -> dict[str, str]:
    """tests/gen2_plugin importable from a folder, with its entry point (no pip needed)."""
    root = tmp_path / "site"
    shutil.copytree(REPO / "tests" / "gen2_plugin" / "my_gen2_backend", root / "my_gen2_backend")
    info = root / "my_gen2_backend-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-gen2-backend\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[hpc_connect]\nmy_gen2_backend = my_gen2_backend\n")
    env = {**os.environ, "PYTHONPATH": str(root), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    for var in ("HPC_CONNECT_CFG64", "HPC_CONNECT_BACKEND", "HPC_CONNECT_CONFIG"):
        env.pop(var, None)
    return env


API = textwrap.dedent("""
    import sys, time
    import hpc_connect
    from hpc_connect import JobSpec

    backend = hpc_connect.get_backend("gen2")
    print(backend.name, backend.type, int(backend.node_count), backend.count_per_node("cpus"))
    # the second generation's own way
    future = backend.submission_manager().submit(JobSpec(
        "g", ["echo gen2-$X", "exit 3"], env={"X": "ok"}, output="g.out", error="g.out",
        workspace="ws"))
    print("future", future.result(timeout=60), open("g.out").read().strip())
    # the first generation's calls on the same backend
    proc = backend.submit("s", ["echo seed-call"], output="s.out")
    print("submit", proc.wait(timeout=60), proc.state.value, open("s.out").read().strip())
    procs = backend.submitn(["a", "b"], [["exit 0"], ["exit 5"]])
    while procs.poll() is None:
        time.sleep(0.1)
    print("submitn", [p.returncode for p in procs])
    print("launcher", backend.launcher, backend.launcher().build_argv(["-n", "2", "x"])[-3:])
""")


def test_gen2_plugin_through_both_api_generations(plugin_env: dict[str, str],
                                                  tmp_path: Path) -> None:
    api = subprocess.run([sys.executable, "-c", API], capture_output=True, text=True,
                         timeout=180, cwd=tmp_path, env=plugin_env)
    assert api.stdout.splitlines() == [
        "gen2-local gen2-local 1 2", "future 3 gen2-ok", "submit 0 completed seed-call",
        "submitn [0, 5]", "launcher mpiexec ['-n', '2', 'x']"], api.stderr


def test_gen2_plugin_in_the_command_lines(plugin_env: dict[str, str], tmp_path: Path) -> None:
    """``hpc-connect info`` lists it, ``hpc-connect submit --wait`` runs a job with it,
    ``hpcc --backend gen2 info`` describes it and ``hpc-launch --backend=gen2`` starts a
    program with its own launch adapter."""
    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True,
                              timeout=180, cwd=tmp_path, env=plugin_env)

    info = run("hpc-connect", "info")
    assert "  gen2-local  [plugin my_gen2_backend;" in info.stdout, info.stdout + info.stderr
    submitted = run("hpc-connect", "submit", "--backend", "gen2", "--wait", "exit 4")
    assert submitted.returncode == 4, submitted.stderr
    described = run("hpcc", "--backend", "gen2", "info")
    assert described.stdout.splitlines()[:2] == ["Name: gen2-local", "Type: gen2-local"]
    launched = run("hpc-launch", "--backend=gen2", "-n", "2", "echo", "ranked")
    assert (launched.returncode, launched.stdout) == (0, "ranked\nranked\n"), launched.stderr


def test_gen2_plugin_under_snakemake(plugin_env: dict[str, str], tmp_path: Path) -> None:
    """``snakemake --executor hpc-connect --hpc-connect-backend gen2`` runs a two-rule
    workflow; Ctrl-C cancels the running job through the plugin's own ``cancel()``."""
    workflow = tmp_path / "wf"
    workflow.mkdir()
    (workflow / "Snakefile").write_text(
        'rule a:\n    output: "a.txt"\n    shell: "echo from-a > {output}"\n'
        'rule b:\n    input: "a.txt"\n    output: "b.txt"\n'
        '    shell: "cat {input} > {output}; echo from-b >> {output}"\n')
    smk = [str(BIN / "snakemake"), "--executor", "hpc-connect", "--hpc-connect-backend", "gen2",
           "--jobs", "2"]
    done = subprocess.run([*smk, "b.txt"], capture_output=True, text=True, timeout=600,
                          cwd=workflow, env=plugin_env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (workflow / "b.txt").read_text() == "from-a\nfrom-b\n"

    marker = "3611.75"
    (workflow / "Snakefile").write_text(
        f'rule slow:\n    output: "slow.txt"\n    shell: "sleep {marker} && touch {{output}}"\n')
    proc = subprocess.Popen(smk, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            cwd=workflow, env=plugin_env)
    try:
        assert wait_until(lambda: processes_with(f"sleep {marker}"), timeout=120)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0, err[-3000:]
    assert wait_until(lambda: not processes_with(f"sleep {marker}"), timeout=30)
    assert not (workflow / "slow.txt").exists()
