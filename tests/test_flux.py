"""Flux backend units that need no Flux: names, F58 ids, the generated directives and
``flux batch`` argv, and the script run by hand. Everything else (submit, status,
exit codes, time limits, cancel, attach, dependencies, lost replies, node loss,
allocations) runs against a real Flux in test_flux_real.py."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from hpc_connect.builtin_backends.flux import FluxBackend, f58_encode, parse_id
from hpc_connect.job import JobSpec
from hpc_connect.registry import BACKEND_LAUNCHERS, find_backend_class
from hpc_connect.script import JobFiles, render_script

ODD = "it's a \"job\" $(touch pwned) `x`"


def backend(tmp_path: Path) -> FluxBackend:
    # polling_interval: the scheduler is asked on every poll
    return FluxBackend(workdir=tmp_path, retry_delay=0.001, lost_grace=0, polling_interval=0.001)


def test_registry_and_f58() -> None:
    """Registry names (``flux.sh`` is the CLI backend), and F58 ids against flux-core's
    test vector 6731191091817518 = ƒuZZybuNNy (ASCII fuZZybuNNy)."""
    assert find_backend_class("flux.sh") is FluxBackend
    assert FluxBackend.launcher == BACKEND_LAUNCHERS["flux.sh"] == "flux-run"
    assert f58_encode(6731191091817518) == "uZZybuNNy"
    assert parse_id("ƒuZZybuNNy") == parse_id("fuZZybuNNy") == parse_id("6731191091817518")
    with pytest.raises(ValueError, match="not a flux job id: 'f0O'"):
        parse_id("f0O")


def test_directives_exact_and_script_runs_literally(tmp_path: Path) -> None:
    """Exact '# flux:' lines (shell-quoted, as flux parses them; options flux adds up
    when repeated only on the command line), the flux batch argv, and that the script
    runs the commands literally."""
    spec = JobSpec(name=ODD, commands=["printf '%s\\n' " + shlex.quote(ODD), "exit 9"],
                   qtime=90.5, nodes=2, cpus=8, gpus=4, workdir=tmp_path)
    files = JobFiles.for_spec(spec, tmp_path / "my dir", "00001-x")
    b = backend(tmp_path)
    out = str(files.output)
    assert b.directives(spec, files) == [
        f"# flux: --job-name {shlex.quote(ODD)}", "# flux: -N 2", "# flux: -n 4",
        "# flux: -g 1", "# flux: -c 2", "# flux: -t 91s", f"# flux: --output '{out}'"]
    assert b.submit_argv(spec, files) == [
        "flux", "batch", "--job-name", ODD, "-N", "2",
        "--broker-opts=-Sbroker.critical-ranks=0-1", "-n", "4", "-g", "1", "-c", "2",
        "-t", "91s", "--output", out, str(files.script)]
    plain = JobSpec(name="p", commands=["true"])
    assert b.options(plain, files)[1] == ("-n", "1")  # flux batch needs -n or -N
    files.script.parent.mkdir(parents=True)
    files.script.write_text(render_script(spec, files, directives=b.directives(spec, files)))
    run = subprocess.run(["bash", str(files.script)], capture_output=True, text=True, timeout=30)
    assert (run.returncode, run.stdout) == (9, ODD + "\n")
    assert files.read_exitcode() == 9 and not (tmp_path / "pwned").exists()
