"""Configuration: file < environment < arguments, and one clear error per mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

import hpc_connect
from hpc_connect import ConfigError, load_config


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for var in (
        "HPC_CONNECT_CONFIG",
        "HPC_CONNECT_BACKEND",
        "HPC_CONNECT_LAUNCHER",
        "HPC_CONNECT_POLLING_INTERVAL",
    ):
        monkeypatch.delenv(var, raising=False)


def test_defaults_without_any_file() -> None:
    """No file, no variables: the shell backend and the mpi launcher."""
    config = load_config()
    assert config.source is None and config.backend is None
    assert hpc_connect.get_backend().name == "shell"
    assert hpc_connect.get_launcher().name == "mpi"


def test_file_then_environment_then_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """./hpc_connect.toml is read; environment variables override it; arguments override both."""
    Path("hpc_connect.toml").write_text(
        'backend = "local"\npolling_interval = 7\n[backends.shell]\ncancel_grace = 0.5\n'
    )
    backend = hpc_connect.get_backend()
    assert (backend.name, backend.polling_interval, backend.cancel_grace) == ("shell", 7.0, 0.5)
    monkeypatch.setenv("HPC_CONNECT_POLLING_INTERVAL", "3")
    assert hpc_connect.get_backend().polling_interval == 3.0
    assert hpc_connect.get_backend(polling_interval=1).polling_interval == 1.0
    monkeypatch.setenv("HPC_CONNECT_BACKEND", "nope")
    with pytest.raises(hpc_connect.UnknownBackendError, match="'nope'"):
        hpc_connect.get_backend()


def test_user_config_dir_and_explicit_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The user config dir is used when there is no local file; $HPC_CONNECT_CONFIG wins."""
    user = tmp_path / "xdg" / "hpc_connect" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text("polling_interval = 4\n")
    assert load_config().source == user
    other = tmp_path / "other.toml"
    other.write_text("polling_interval = 5\n")
    monkeypatch.setenv("HPC_CONNECT_CONFIG", str(other))
    assert load_config().polling_interval == 5.0


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "bakend = 'shell'\n",
            "unknown key 'bakend'; allowed: backend, backends, launcher, "
            "launchers, polling_interval",
        ),
        (
            "polling_interval = 'soon'\n",
            "polling_interval = 'soon': expected a number of seconds > 0",
        ),
        ("polling_interval = -1\n", "polling_interval = -1: expected a number of seconds > 0"),
        ("backend = 3\n", "backend = 3: expected a non-empty name"),
        (
            "[launchers.mpi]\ndefault_args = '-v'\n",
            "launchers.mpi.default_args = '-v': expected a list of strings",
        ),
        ("[launchers.mpi]\nexe = 'x'\n", "unknown key launchers.mpi.'exe'"),
        (
            "[backends.shell]\nsubmit_flags = 'x'\n",
            "backends.shell.submit_flags = 'x': expected a list of strings",
        ),
        ("backend = \n", "not valid TOML"),
    ],
)
def test_bad_file_is_one_line_naming_file_and_key(text: str, message: str) -> None:
    """A typo or wrong type: ConfigError naming the file, the key and what is allowed."""
    Path("hpc_connect.toml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config()
    assert "hpc_connect.toml" in str(info.value)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_backend_option_is_named(tmp_path: Path) -> None:
    """An option the backend does not take: ConfigError listing the allowed ones."""
    Path("hpc_connect.toml").write_text("[backends.shell]\ncancel_grase = 1\n")
    with pytest.raises(
        ConfigError,
        match="backend 'shell' has no option 'cancel_grase'; "
        "allowed: cancel_grace, polling_interval",
    ):
        hpc_connect.get_backend("shell")


def test_missing_explicit_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """A named file that does not exist is an error, not silently ignored."""
    monkeypatch.setenv("HPC_CONNECT_CONFIG", "/nonexistent/x.toml")
    with pytest.raises(ConfigError, match=r"\$HPC_CONNECT_CONFIG='/nonexistent/x.toml': no such"):
        load_config()
    with pytest.raises(ConfigError, match=r"config_file='/nope\.toml': no such file"):
        hpc_connect.get_launcher("mpi", config_file="/nope.toml")


def test_launcher_from_config_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    """With backend = slurm configured and no launcher, the launcher is srun."""
    Path("hpc_connect.toml").write_text('backend = "slurm"\n')
    assert hpc_connect.get_launcher().name == "srun"
    monkeypatch.setenv("HPC_CONNECT_LAUNCHER", "mpi")
    assert hpc_connect.get_launcher().name == "mpi"
