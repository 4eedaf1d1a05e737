"""Shared fixtures: the real one-node Slurm and Grid Engine, the test Flux, and helpers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
CLUSTER = HERE / "slurm" / "cluster.sh"
SGE_CLUSTER = HERE / "sge" / "cluster.sh"
IN_CI = os.environ.get("CI") == "true"


def _unavailable(reason: str) -> None:
    """Under CI=true the Slurm tests must run: a missing cluster is a failure there."""
    if IN_CI:
        pytest.fail(f"Slurm cluster needed under CI=true: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start (or reuse) the one-node Slurm of tests/slurm/cluster.sh; yield its SLURM_CONF.

    At the end, cancel only this session's jobs (script or workdir under this session's
    temporary folder): other test processes share the cluster.
    """
    if shutil.which("slurmctld") is None or shutil.which("munged") is None:
        _unavailable("slurm-wlm and munge are not installed (apt-get install slurm-wlm munge)")
    if os.geteuid() != 0:
        _unavailable("the test cluster runs slurmctld/slurmd as root")
    started = subprocess.run(
        ["bash", str(CLUSTER), "start"], capture_output=True, text=True, timeout=240
    )
    if started.returncode != 0:
        _unavailable(f"cluster.sh start failed: {started.stderr.strip()[-2000:]}")
    conf = started.stdout.strip().splitlines()[-1]
    os.environ["SLURM_CONF"] = conf
    yield conf
    env = {**os.environ, "SLURM_CONF": conf}
    base = str(tmp_path_factory.getbasetemp().resolve())
    listed = subprocess.run(["squeue", "--me", "--noheader", "--format=%i|%o|%Z"],
                            capture_output=True, text=True, timeout=60, env=env)
    ours = [line.split("|", 1)[0] for line in listed.stdout.splitlines()
            if any(part.startswith(base) for part in line.split("|")[1:])]
    if ours:
        subprocess.run(["scancel", *ours], capture_output=True, timeout=60, env=env)


#: the second test cluster: cgroup process tracking, its own state folder and ports
CGROUP_CLUSTER = {"HPC_CONNECT_SLURM_DIR": "/tmp/hpc-connect-slurm-cgroup",
                  "HPC_CONNECT_SLURM_PROCTRACK": "cgroup", "HPC_CONNECT_SLURM_PORT": "6827"}


@pytest.fixture(scope="session")
def slurm_cgroup_cluster(slurm_cluster: str) -> Iterator[str]:
    """A second one-node Slurm beside the first, tracking job processes with the cgroup v1
    freezer (``proctrack/cgroup``); yields its SLURM_CONF (pass it in ``env``: the first
    cluster stays this process's default) and stops it at the end. Skipped only where the
    machine has no writable freezer hierarchy."""
    if not os.access("/sys/fs/cgroup/freezer", os.W_OK):
        pytest.skip("no writable cgroup v1 freezer (/sys/fs/cgroup/freezer): linuxproc only")
    env = {**os.environ, **CGROUP_CLUSTER}
    started = subprocess.run(["bash", str(CLUSTER), "start"], capture_output=True, text=True,
                             timeout=240, env=env)
    if started.returncode != 0:
        _unavailable(f"cluster.sh start (cgroup) failed: {started.stderr.strip()[-2000:]}")
    yield started.stdout.strip().splitlines()[-1]
    subprocess.run(["bash", str(CLUSTER), "stop"], capture_output=True, timeout=120, env=env)
@pytest.fixture(scope="session")
def sge_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start (or reuse) the one-node Grid Engine of tests/sge/cluster.sh (it installs the
    gridengine packages when missing); yield SGE_ROOT. Under CI=true a cluster that cannot
    start is a failure, elsewhere a skip. At the end, qdel this session's jobs only."""
    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail("Grid Engine cluster needed under CI=true: cluster.sh runs as root")
        pytest.skip("the test Grid Engine runs its daemons as root")
    started = subprocess.run(
        ["bash", str(SGE_CLUSTER), "start"], capture_output=True, text=True, timeout=900
    )
    if started.returncode != 0:
        if IN_CI:
            pytest.fail(f"Grid Engine cluster needed under CI=true: {started.stderr[-2000:]}")
        pytest.skip(f"tests/sge/cluster.sh start failed: {started.stderr.strip()[-2000:]}")
    root = started.stdout.strip().splitlines()[-1]
    os.environ.setdefault("SGE_ROOT", root)
    os.environ.setdefault("SGE_CELL", "default")
    yield root
    base = str(tmp_path_factory.getbasetemp().resolve())
    from sge_jobs import jobs_under

    ours = [jobid for jobid, _, _ in jobs_under(Path(base))]
    if ours:
        subprocess.run(["qdel", *ours], capture_output=True, timeout=60)


SSHD = HERE / "ssh" / "sshd.sh"


class SshServer:
    """A running test sshd: ``config`` (an ssh_config whose Host ``alias`` reaches it),
    its ``port`` and state folder ``dir``."""

    alias = "hpc-connect-test"

    def __init__(self, config: Path, port: int, state: Path) -> None:
        self.config, self.port, self.dir = config, port, state


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the time of asking)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """A real OpenSSH server of tests/ssh/sshd.sh on 127.0.0.1, with its own state folder
    (host key, authorized key, config) under this session's temporary folder and a free
    port; stopped at the end (which also ends whatever came in through it). Under CI=true
    a server that cannot start is a failure, elsewhere a skip."""
    def unavailable(reason: str) -> None:
        if IN_CI:
            pytest.fail(f"sshd needed under CI=true: {reason}")
        pytest.skip(reason)

    if not Path("/usr/sbin/sshd").exists() or shutil.which("ssh") is None:
        unavailable("openssh-server/openssh-client not installed (bash tests/ssh/sshd.sh install)")
    if os.geteuid() != 0:
        unavailable("the test sshd runs as root")
    state = tmp_path_factory.mktemp("sshd")
    port = free_port()
    env = {**os.environ, "HPC_CONNECT_SSH_DIR": str(state), "HPC_CONNECT_SSH_PORT": str(port)}
    started = subprocess.run(["bash", str(SSHD), "start"], capture_output=True, text=True,
                             timeout=120, env=env)
    if started.returncode != 0:
        unavailable(f"tests/ssh/sshd.sh start failed: {started.stderr.strip()[-2000:]}")
    try:
        yield SshServer(Path(started.stdout.strip().splitlines()[-1]), port, state)
    finally:
        subprocess.run(["bash", str(SSHD), "stop"], capture_output=True, timeout=120, env=env)


FLUX_CLUSTER = HERE / "flux" / "cluster.sh"
#: where tests/flux/cluster.sh installs flux-core (its bin goes on PATH for the Flux tests)
FLUX_PREFIX = Path("/opt/flux-0.88.0")


def flux_env(state_dir: str | None = None) -> dict[str, str]:
    """The variables a client of the test Flux needs (``state_dir``: another instance's
    ``HPC_CONNECT_FLUX_DIR``); FLUX_URI is filled in by ``start_flux``."""
    env = {"PATH": f"{FLUX_PREFIX / 'bin'}:{os.environ.get('PATH', '')}",
           "FLUX_URI_RESOLVE_LOCAL": "1"}
    if state_dir is not None:
        env["HPC_CONNECT_FLUX_DIR"] = state_dir
    return env


def start_flux(state_dir: str | None = None) -> str:
    """Start (or reuse) a test instance with tests/flux/cluster.sh; its FLUX_URI. Under
    CI=true a Flux that cannot be built or started is a failure, elsewhere a skip."""
    def unavailable(reason: str) -> None:
        if IN_CI:
            pytest.fail(f"Flux needed under CI=true: {reason}")
        pytest.skip(reason)

    if os.geteuid() != 0:
        unavailable("the test Flux instance runs as root (tests/flux/cluster.sh)")
    env = {**os.environ, **flux_env(state_dir)}
    for step, limit in (("install", 1500), ("start", 180)):
        done = subprocess.run(["bash", str(FLUX_CLUSTER), step], capture_output=True,
                              text=True, timeout=limit, env=env)
        if done.returncode != 0:
            unavailable(f"tests/flux/cluster.sh {step} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def flux_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The 2-broker test Flux of tests/flux/cluster.sh (built on first use on a machine,
    then reused; started or reused); yields its FLUX_URI, set with PATH and
    FLUX_URI_RESOLVE_LOCAL in this process's environment. Other test processes may share
    the instance: it is never stopped here, and at the end only this session's jobs
    (working folder under this session's temporary folder) are cancelled."""
    uri = start_flux()
    os.environ.update(flux_env())
    os.environ["FLUX_URI"] = uri
    yield uri
    base = str(tmp_path_factory.getbasetemp().resolve())
    listed = subprocess.run(["flux", "jobs", "--json", "-f", "pending,running"],
                            capture_output=True, text=True, timeout=60)
    try:
        jobs = json.loads(listed.stdout or "{}").get("jobs", [])
    except ValueError:
        jobs = []
    ours = [str(job["id"]) for job in jobs if str(job.get("cwd", "")).startswith(base)]
    if ours:
        subprocess.run(["flux", "cancel", *ours], capture_output=True, timeout=60)
