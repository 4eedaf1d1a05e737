"""The catalog distribution (packaging/snakemake-executor-plugin-hpc-connect): built with
``python -m build`` and installed alone into a fresh venv, where its dependency pulls in
hpc-connect (a wheel of this repository, as a package index would serve it) and
Snakemake; ``snakemake --executor hpc-connect`` then runs a workflow from that venv."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "packaging" / "snakemake-executor-plugin-hpc-connect"


def check(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600,
                            stdin=subprocess.DEVNULL, **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, f"{argv}: {result.stderr[-3000:]}"
    return result  # type: ignore[no-any-return]


def test_pinned_to_this_version() -> None:
    """The catalog distribution pins hpc-connect to this repository's version (another
    project's `hpc-connect` on the index has higher versions and no `snakemake` extra)."""
    ours = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    dist = tomllib.loads((DIST / "pyproject.toml").read_text())["project"]
    assert dist["dependencies"] == [f"hpc-connect[snakemake]=={ours['version']}"]
    assert dist["version"] == ours["version"] and dist["urls"] == ours["urls"]


@pytest.mark.slow
def test_built_and_installed_in_a_fresh_venv(tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(DIST, source)  # the build's by-products stay out of the repository
    # cwd: `python -m` puts the working folder first on sys.path, where a build/ folder
    # (left by `pip install .` in the repository) would shadow the build package
    check([sys.executable, "-m", "build", "--outdir", str(tmp_path / "dist"), str(source)],
          cwd=tmp_path)
    wheel = next((tmp_path / "dist").glob("snakemake_executor_plugin_hpc_connect-*.whl"))
    assert next((tmp_path / "dist").glob("snakemake_executor_plugin_hpc_connect-*.tar.gz"))

    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    pip = [str(env / "bin" / "python"), "-m", "pip", "install", "-q",
           "--disable-pip-version-check"]
    wheels = tmp_path / "wheels"  # hpc-connect is not on an index: serve it from here
    check([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels),
           str(ROOT)])
    check([*pip, "--find-links", str(wheels), "-c", str(ROOT / ".ci" / "constraints.txt"),
           str(wheel)])
    shown = check([str(env / "bin" / "python"), "-m", "pip", "show",
                   "snakemake-executor-plugin-hpc-connect"]).stdout
    assert "Requires: hpc-connect" in shown
    shown = check([str(env / "bin" / "python"), "-m", "pip", "show", "hpc-connect"]).stdout
    ours = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert f"Version: {ours}" in shown.splitlines()  # ours, not the index's namesake
    check([str(env / "bin" / "python"), "-c", "import hpc_connect, snakemake"])

    work = tmp_path / "wf"
    work.mkdir()
    (work / "Snakefile").write_text(
        'rule hello:\n    output: "hello.txt"\n    shell: "echo hi from $0 > {output}"\n')
    result = check([str(env / "bin" / "snakemake"), "--executor", "hpc-connect",
                    "--jobs", "1"], cwd=work)
    assert (work / "hello.txt").read_text().startswith("hi from")
    assert "hpc-connect: backend shell" in result.stderr
