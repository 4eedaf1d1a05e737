"""The seed contract for plugins: the README's minimal backend and launcher work with
every consumer, and each kind of broken plugin gets one clear line, never a traceback."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest
from helpers import processes_with, wait_until

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

SNAKEFILE = textwrap.dedent("""
    rule all:
        input: "b.txt"

    rule a:
        output: "a.txt"
        shell: "echo from-a > {output}"

    rule b:
        input: "a.txt"
        output: "b.txt"
        shell: "cat {input} > {output} && echo from-b >> {output}"
""")

API = textwrap.dedent("""
    import hpc_connect
    backend = hpc_connect.get_backend("my-backend")
    proc = backend.submit("hello", ["echo $GREETING"], variables={"GREETING": "hi there"},
                          output="hello.out")
    print(type(backend).__name__, type(proc).__name__, proc.wait(), proc.state.value)
    print(open("hello.out").read().strip())
""")


@pytest.mark.slow
def test_readme_seed_plugin_in_a_fresh_venv(tmp_path: Path) -> None:
    """tests/seed_plugin (the README's MyBackend/MyProcess/MyLauncher), pip-installed with
    hpc-connect[snakemake] into a fresh venv: it runs a job through the API, hpc-launch
    runs a program with it, hpc-connect info lists it, Snakemake runs a two-rule workflow
    with --executor hpc-connect --hpc-connect-backend my-backend, and Ctrl-C on Snakemake
    leaves no job process."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bindir = env_dir / "bin"
    install = subprocess.run(
        [bindir / "python", "-m", "pip", "install", "-q", f"{REPO}[snakemake]",
         str(REPO / "tests" / "seed_plugin")],
        capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stderr[-3000:]
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}
    env.pop("HPC_CONNECT_BACKEND", None)

    api = subprocess.run([bindir / "python", "-c", API], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path, env=env)
    assert api.stdout.splitlines() == ["MyBackend MyProcess 0 completed", "hi there"], api.stderr

    launch = subprocess.run([bindir / "hpc-launch", "--backend=my-launcher", "-n", "2",
                             "echo", "ranked"], capture_output=True, text=True, timeout=120,
                            env=env)
    assert (launch.returncode, launch.stdout) == (0, "ranked\nranked\n"), launch.stderr

    info = subprocess.run([bindir / "hpc-connect", "info"], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env=env)
    assert "  my-backend  [plugin my_hpc_connect; launcher mpi]" in info.stdout, info.stdout
    assert "  my-launcher  [plugin my_hpc_connect]" in info.stdout, info.stdout
    assert "  shell (also: local, none)  [built-in" in info.stdout

    workflow = tmp_path / "workflow"
    workflow.mkdir()
    (workflow / "Snakefile").write_text(SNAKEFILE)
    run = subprocess.run(
        [bindir / "snakemake", "--executor", "hpc-connect", "--hpc-connect-backend",
         "my-backend", "--jobs", "2"],
        capture_output=True, text=True, timeout=600, cwd=workflow, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "backend my-backend" in run.stderr
    assert (workflow / "b.txt").read_text() == "from-a\nfrom-b\n"

    # Ctrl-C on that Snakemake cancels the running job through MyProcess.cancel()
    marker = "3593.25"
    (workflow / "Snakefile").write_text(
        f'rule slow:\n    output: "slow.txt"\n    shell: "sleep {marker} && touch {{output}}"\n')
    smk = subprocess.Popen(
        [bindir / "snakemake", "--executor", "hpc-connect", "--hpc-connect-backend",
         "my-backend", "--jobs", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=workflow, env=env)
    try:
        assert wait_until(lambda: processes_with(f"sleep {marker}"), timeout=120)
        smk.send_signal(signal.SIGINT)
        _, err = smk.communicate(timeout=120)
    finally:
        if smk.poll() is None:
            smk.kill()
            smk.wait()
    assert smk.returncode != 0 and "cancelling 1 my-backend job(s)" in err, err[-3000:]
    assert wait_until(lambda: not processes_with(f"sleep {marker}"), timeout=30)
    assert not (workflow / "slow.txt").exists()


def _fake_distribution(root: Path, dist: str, module: str, body: str) -> None:
    """A module plus .dist-info with an hpc_connect entry point, importable from ``root``."""
    (root / f"{module}.py").write_text(textwrap.dedent(body))
    info = root / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[hpc_connect]\n{module} = {module}\n")


def _run(root: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True,
                          timeout=120, cwd=root, env=env)


def _assert_info_still_works(root: Path, *, problem: str) -> None:
    """`hpc-connect info` lists the built-ins and says what is wrong in one warning line
    that names the entry point and the distribution."""
    info = _run(root, "hpc-connect", "info")
    assert info.returncode == 0, info.stderr
    for builtin in ("shell", "slurm", "pbs", "lsf", "flux"):
        assert f"\n  {builtin}" in info.stdout, info.stdout
    if problem:
        lines = info.stderr.splitlines()
        assert len(lines) == 1, info.stderr
        assert "entry point 'broken_ep' (distribution 'broken_dist')" in lines[0]
        assert problem in lines[0]


def _assert_one_error_line(result: subprocess.CompletedProcess[str], *texts: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if "RuntimeWarning" not in line]
    assert len(errors) == 1, result.stderr
    for text in texts:
        assert text in errors[0], errors[0]


def test_broken_plugin_missing_submit(tmp_path: Path) -> None:
    """A backend class without submit(): skipped with one line; get_backend of its name
    raises one clear error naming the plugin and the missing member."""
    _fake_distribution(tmp_path, "broken_dist", "broken_ep", """
        import hpc_connect
        class NoSubmit(hpc_connect.HPCBackend):
            name = "no-submit"
        @hpc_connect.hookimpl
        def hpc_connect_backend():
            return NoSubmit
    """)
    _assert_info_still_works(tmp_path, problem="NoSubmit does not define submit()")
    submit = _run(tmp_path, "hpc-connect", "submit", "--backend", "no-submit", "--", "true")
    _assert_one_error_line(submit, "backend 'no-submit' is not usable", "'broken_ep'",
                           "'broken_dist'", "does not define submit()")


def test_broken_plugin_hook_returns_no_class(tmp_path: Path) -> None:
    """A hook returning a string, not a class: skipped with one line naming what it was."""
    _fake_distribution(tmp_path, "broken_dist", "broken_ep", """
        import hpc_connect
        @hpc_connect.hookimpl
        def hpc_connect_launcher():
            return "my-launcher"
    """)
    _assert_info_still_works(
        tmp_path, problem="hpc_connect_launcher() returned str 'my-launcher', not a class")
    launch = _run(tmp_path, "hpc-launch", "--backend=my-launcher", "true")
    _assert_one_error_line(launch, "unknown launcher or backend 'my-launcher'",
                           "skipped broken plugins: entry point 'broken_ep'")


def test_broken_plugin_submit_returns_no_process(tmp_path: Path) -> None:
    """submit() returning something that is not an HPCProcess: one error line naming the
    backend, its entry point and distribution, and what it returned."""
    _fake_distribution(tmp_path, "broken_dist", "broken_ep", """
        import hpc_connect
        class BadSubmit(hpc_connect.HPCBackend):
            name = "bad-submit"
            def submit(self, name, args, **kwargs):
                return 42
        @hpc_connect.hookimpl
        def hpc_connect_backend():
            return BadSubmit
    """)
    _assert_info_still_works(tmp_path, problem="")
    submit = _run(tmp_path, "hpc-connect", "submit", "--backend", "bad-submit", "--", "true")
    _assert_one_error_line(
        submit, "backend 'bad-submit' from entry point 'broken_ep' (distribution 'broken_dist')",
        "submit() returned int 42, not an hpc_connect.HPCProcess")


def test_broken_plugin_matches_raises(tmp_path: Path) -> None:
    """A matches() that raises: built-in names still work (they never call it); any
    other name gives one error line naming the plugin and the exception."""
    _fake_distribution(tmp_path, "broken_dist", "broken_ep", """
        import hpc_connect
        class BadMatches(hpc_connect.HPCBackend):
            name = "bad-matches"
            @staticmethod
            def matches(name):
                raise RuntimeError("matches exploded")
            def submit(self, name, args, **kwargs):
                raise AssertionError("never called")
        @hpc_connect.hookimpl
        def hpc_connect_backend():
            return BadMatches
    """)
    _assert_info_still_works(tmp_path, problem="")
    ok = _run(tmp_path, "hpc-connect", "submit", "--backend", "shell", "--wait", "--", "true")
    assert ok.returncode == 0, ok.stderr
    submit = _run(tmp_path, "hpc-connect", "submit", "--backend", "bad-matches", "--", "true")
    _assert_one_error_line(
        submit, "entry point 'broken_ep' (distribution 'broken_dist')",
        "BadMatches.matches('bad-matches') raised RuntimeError: matches exploded")


def test_readme_shows_the_seed_plugin_code() -> None:
    """The README's plugin example is tests/seed_plugin's code, so the venv test above
    tests what the README says."""
    module = (REPO / "tests" / "seed_plugin" / "my_hpc_connect" / "__init__.py").read_text()
    code = module[module.index("from __future__"):]
    assert f"```python\n{code}```" in (REPO / "README.md").read_text()


WITH_BACKEND = textwrap.dedent("""
    import sys, time
    import hpc_connect

    backend = hpc_connect.get_backend("my-backend")
    with backend:
        procs = backend.submitn(["a", "b", "c"], [[f"sleep {sys.argv[1]}"]] * 3)
        print("submitted", procs.jobid, flush=True)
        while procs.poll() is None:
            time.sleep(backend.polling_frequency)
""")


def _seed_plugin_on_path(root: Path) -> None:
    """tests/seed_plugin importable from ``root``, with its entry point (no pip needed)."""
    shutil.copytree(REPO / "tests" / "seed_plugin" / "my_hpc_connect", root / "my_hpc_connect")
    info = root / "my_hpc_connect-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-hpc-connect\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[hpc_connect]\nmy_hpc_connect = my_hpc_connect\n")


def test_seed_launcher_gets_its_configured_default_args(tmp_path: Path) -> None:
    """MyLauncher has its own __init__ (no super().__init__()), yet its
    [launchers.my-launcher] default_args apply, right after the executable."""
    _seed_plugin_on_path(tmp_path)
    (tmp_path / "hpc_connect.toml").write_text('[launchers.my-launcher]\ndefault_args = ["-l"]\n')
    dry = _run(tmp_path, "hpc-launch", "--dry-run", "--backend=my-launcher", "-n", "2", "echo", "x")
    assert (dry.returncode, dry.stderr) == (0, "")
    assert dry.stdout.split()[1:] == ["-l", "-n", "2", "echo", "x"]
    assert dry.stdout.split()[0].endswith("mpiexec")


def test_seed_plugin_with_backend_ctrl_c(tmp_path: Path) -> None:
    """The README's minimal backend inside `with backend:`: Ctrl-C cancels every job it
    submitted (through the default cancel_many, i.e. each process's cancel())."""
    _seed_plugin_on_path(tmp_path)
    (tmp_path / "client.py").write_text(WITH_BACKEND)
    marker = "3583.5"
    proc = subprocess.Popen([sys.executable, "client.py", marker], cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(tmp_path)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("submitted"), line
        assert wait_until(lambda: len(processes_with(f"sleep {marker}")) == 3, timeout=60)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    assert wait_until(lambda: not processes_with(f"sleep {marker}"), timeout=30), \
        processes_with(f"sleep {marker}")
