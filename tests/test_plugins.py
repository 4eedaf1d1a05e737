"""Plugin discovery: built-in names, third-party plugins, broken plugins."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import warnings
from pathlib import Path

import pytest

import hpc_connect
from hpc_connect import plugins, registry

REPO = Path(__file__).resolve().parent.parent


def test_builtin_name_tables_match_the_classes() -> None:
    """registry's string tables (used to skip plugin scans) agree with each class."""
    for name, target in registry.BACKENDS.items():
        cls = registry.load(target)
        assert cls.matches(name), (name, cls)
        assert registry.BACKEND_LAUNCHERS[cls.name] == cls.launcher
        assert registry.find_launcher_class(cls.launcher).matches(cls.launcher)
    for name, target in registry.LAUNCHERS.items():
        assert registry.load(target).matches(name) or name == "flux_run"


def test_builtin_names_do_not_load_pluggy() -> None:
    """Resolving the mpi launcher imports neither pluggy nor attrs (hpc-launch start-up)."""
    code = (
        "import sys; from hpc_connect.registry import launcher_for; launcher_for('mpi');"
        "print('pluggy' in sys.modules, 'attrs' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HPC_CONNECT_CONFIG": ""},
        cwd="/",
    )
    assert out.stdout.split() == ["False", "False"], out.stderr


def test_every_builtin_is_listed_with_its_origin() -> None:
    """backends()/launchers() list the built-ins, registered through the hook like plugins."""
    names = set(hpc_connect.backends())
    assert {"shell", "slurm", "pbs", "lsf", "flux"} <= names
    assert {"mpi", "srun", "flux-run", "jsrun"} <= set(hpc_connect.launchers())
    assert all(src == "built-in" for cls, src in plugins.backend_classes() if cls.name == "shell")


def _fake_distribution(root: Path, dist: str, module: str, body: str) -> None:
    """A module plus .dist-info with an hpc_connect entry point, importable from ``root``."""
    (root / f"{module}.py").write_text(body)
    info = root / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[hpc_connect]\n{dist} = {module}\n")


def test_broken_plugin_warns_and_others_keep_working(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plugin that fails to import: a warning naming it and the error; the rest works."""
    _fake_distribution(tmp_path, "broken_plugin", "broken_mod", "raise ImportError('no libfoo')\n")
    _fake_distribution(
        tmp_path,
        "good_plugin",
        "good_mod",
        "import hpc_connect\nfrom hpc_connect.builtin_backends.shell import ShellBackend\n"
        "class Good(ShellBackend):\n    name = 'good'\n"
        "@hpc_connect.hookimpl\ndef hpc_connect_backend():\n    return Good\n",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins.plugin_manager.cache_clear()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            backend = hpc_connect.get_backend("good")
        messages = [str(w.message) for w in caught]
        assert any("'broken_plugin'" in m and "ImportError: no libfoo" in m for m in messages)
        assert backend.name == "good"
        assert hpc_connect.get_backend("shell").name == "shell"
        assert ("good", "plugin good_plugin") in [(c.name, s) for c, s in plugins.backend_classes()]
    finally:
        plugins.plugin_manager.cache_clear()


@pytest.mark.slow
def test_custom_backend_example_in_a_fresh_venv(tmp_path: Path) -> None:
    """examples/custom_backend, pip-installed into a fresh venv with hpc-connect, is found by
    get_backend('my-backend') and by hpc-launch --backend=my-launcher."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    install = subprocess.run(
        [py, "-m", "pip", "install", "-q", str(REPO), str(REPO / "examples" / "custom_backend")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    code = (
        "import hpc_connect; p = hpc_connect.get_backend('my-backend').submit("
        "'site', ['echo $MY_SITE']); print(p.wait(), open(p.files.output).read().strip())"
    )
    run = subprocess.run(
        [py, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert run.stdout.split() == ["0", "example-site"], run.stderr
    launch = subprocess.run(
        [
            env_dir / "bin" / "hpc-launch",
            "--backend=my-launcher",
            "-n",
            "4",
            "sh",
            "-c",
            "echo ranks: $MY_NPROCS",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert launch.stdout == "ranks: 4\n", launch.stderr
    info = subprocess.run(
        [env_dir / "bin" / "hpc-connect", "info"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert "my-backend (also: mine)  [plugin my_plugin" in info.stdout, info.stdout


def test_listing_functions_survive_backend_imports() -> None:
    """hpc_connect.backends()/launchers() stay functions after backend modules are imported
    (a subpackage of the same name would shadow them)."""
    import hpc_connect.builtin_backends.shell
    import hpc_connect.builtin_launchers.mpi

    hpc_connect.get_backend("shell")
    assert callable(hpc_connect.backends) and callable(hpc_connect.launchers)
    assert hpc_connect.backends()["shell"].name == "shell"
