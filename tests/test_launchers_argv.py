"""flux-run and jsrun launcher argv. No real Flux or jsrun runs here: fake ``flux`` /
``jsrun`` executables on PATH only make the launchers findable; argv is checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpc_connect.builtin_launchers.flux import FluxRunLauncher
from hpc_connect.builtin_launchers.jsrun import JsrunLauncher
from hpc_connect.errors import InvalidJobError, LauncherNotFoundError
from hpc_connect.registry import LAUNCHERS, find_launcher_class


@pytest.fixture
def fakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("flux", "jsrun"):
        (tmp_path / name).write_text("#!/bin/sh\nexit 0\n")
        (tmp_path / name).chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("HPC_CONNECT_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_registry() -> None:
    """No real launchers here. Checks registry names map to these classes."""
    assert find_launcher_class("flux-run") is FluxRunLauncher is find_launcher_class("flux_run")
    assert find_launcher_class("flux") is FluxRunLauncher  # the backend's own launcher
    assert find_launcher_class("jsrun") is JsrunLauncher is find_launcher_class("lsf")
    assert LAUNCHERS["jsrun"].endswith(":JsrunLauncher")


def test_flux_run_argv(fakes: Path) -> None:
    """No real Flux here. Checks -n/-np/--np all become 'flux run -n N', program
    arguments pass literally, and MPMD is refused in one clear line."""
    launcher = FluxRunLauncher()
    flux = str(fakes / "flux")
    for flag in ("-n", "-np", "--np"):
        assert launcher.build_argv([flag, "4", "prog", "a b", "$(x)"]) == [
            flux, "run", "-n", "4", "prog", "a b", "$(x)"]
    assert launcher.build_argv(["prog"]) == [flux, "run", "prog"]
    assert launcher.build_argv(["-n", "2", "--exclusive", "prog"]) == [
        flux, "run", "-n", "2", "--exclusive", "prog"]
    with pytest.raises(InvalidJobError, match="'flux-run' does not support ':'"):
        launcher.build_argv(["-n", "1", "a", ":", "-n", "1", "b"])


def test_jsrun_argv(fakes: Path) -> None:
    """No real jsrun here. Checks -n N becomes jsrun's process count --np N (jsrun's
    own -n counts resource sets), options pass through, and MPMD is refused."""
    launcher = JsrunLauncher()
    jsrun = str(fakes / "jsrun")
    assert launcher.build_argv(["-n", "6", "--gpu_per_rs=1", "prog", "x"]) == [
        jsrun, "--np", "6", "--gpu_per_rs=1", "prog", "x"]
    with pytest.raises(InvalidJobError, match="'jsrun' does not support ':'"):
        launcher.build_argv(["-n", "1", "a", ":", "b"])


def test_missing_executable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No real launchers here. Checks a missing jsrun is a one-line error naming it."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(LauncherNotFoundError, match="launcher 'jsrun': jsrun not found"):
        JsrunLauncher().build_argv(["-n", "2", "prog"])
