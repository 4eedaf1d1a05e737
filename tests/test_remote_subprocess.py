"""The ``remote_subprocess`` backend against a real OpenSSH server (the ``sshd`` fixture:
Debian's sshd on 127.0.0.1 with its own port, host key and authorized key).

The "remote" host is this machine reached through that sshd, so the file system is
shared. That a job really ran over ssh is shown by its ``SSH_CONNECTION`` naming the
test server's port; "nothing left" is checked in the process table with unique
``sleep 2<random>`` markers.
"""

from __future__ import annotations

import os
import random
import signal
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from conftest import SshServer, free_port
from helpers import processes_with, wait_until

import hpc_connect
from hpc_connect import JobSpec, JobState
from hpc_connect.builtin_backends import remote_subprocess
from hpc_connect.errors import InvalidJobError, SubmitError

pytestmark = pytest.mark.ssh


def remote(sshd: SshServer, workdir: Path, **options: object) -> hpc_connect.HPCBackend:
    """The backend, through the test server's ssh_config; job files under ``workdir``."""
    return hpc_connect.get_backend("remote_subprocess", ssh_config=str(sshd.config),
                                   workdir=workdir, **options)


def marker() -> str:
    return f"sleep 2{random.randrange(10**7, 10**8)}"


def came_through(sshd: SshServer, pid: int) -> bool:
    """Process ``pid`` came in through the test sshd (its SSH_CONNECTION says so)."""
    connection = psutil.Process(pid).environ().get("SSH_CONNECTION", "")
    return connection.endswith(f" 127.0.0.1 {sshd.port}")


def test_exit_codes_outputs_and_signals(sshd: SshServer, tmp_path: Path) -> None:
    backend = remote(sshd, tmp_path, host=sshd.alias)
    ok = backend.submit("ok", ['echo "out $SSH_CONNECTION"', "echo err >&2"],
                        output=tmp_path / "ok.out", error=tmp_path / "ok.err")
    three = backend.submit("three", ["echo before", "exit 3", "echo never"],
                           output=tmp_path / "three.log")
    killed = backend.submit("killed", ["kill -9 $$"], output=tmp_path / "killed.log")
    assert ok.wait(30) == 0 and ok.state is JobState.COMPLETED
    assert three.wait(30) == 3 and three.state is JobState.FAILED
    assert three.reason == "exit code 3"
    # ssh says 255 for a remote command killed by a signal: the job's status file tells
    assert killed.wait(30) == -9 and killed.reason == "killed by signal 9 (SIGKILL)"
    assert (tmp_path / "ok.out").read_text().startswith("out ")
    assert (tmp_path / "ok.out").read_text().strip().endswith(f" 127.0.0.1 {sshd.port}")
    assert (tmp_path / "ok.err").read_text() == "err\n"
    assert (tmp_path / "three.log").read_text() == "before\n"
    assert ok.usage is not None and ok.usage.elapsed_s >= 0
    assert ok.jobid.startswith(f"{sshd.alias}:")
    for path in (tmp_path / "ok.out", tmp_path / "three.log", ok.files.exitcode):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_time_limit_reached(sshd: SshServer, tmp_path: Path) -> None:
    mark = marker()
    process = remote(sshd, tmp_path, host=sshd.alias).submit("slow", [mark], qtime=1,
                                                   output=tmp_path / "slow.log")
    assert wait_until(lambda: processes_with(mark), 20)
    assert process.wait(30) in (124, 137)
    assert process.state is JobState.TIMED_OUT
    assert process.reason == "time limit of 1s reached"
    assert wait_until(lambda: not processes_with(mark), 15), processes_with(mark)


def test_cancel_ends_the_remote_process_tree(sshd: SshServer, tmp_path: Path) -> None:
    """A foreground, a background and a ``setsid`` child (out of the job's session):
    cancel leaves none of them, and the job was really remote."""
    marks = [marker() for _ in range(3)]
    backend = remote(sshd, tmp_path, host=sshd.alias)
    process = backend.submit("tree", [f"setsid {marks[0]} & {marks[1]} & {marks[2]}"],
                             output=tmp_path / "tree.log")
    assert wait_until(lambda: all(processes_with(m) for m in marks), 20)
    assert all(came_through(sshd, processes_with(m)[0].pid) for m in marks)
    process.cancel()
    assert process.state is JobState.CANCELLED and process.reason == "cancelled by user"
    assert wait_until(lambda: not any(processes_with(m) for m in marks), 15), \
        [processes_with(m) for m in marks]
    assert process.popen.poll() is not None  # the local ssh client ended too
    assert backend.live_processes() == []


def test_lost_connection_is_lost_and_ends_the_job(sshd: SshServer, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The ssh connection dies (its sshd process killed): the job, which would run on
    unseen, is ended and reported lost with ssh's words."""
    monkeypatch.setattr(remote_subprocess, "STATUS_WAIT_S", 1.0)
    mark = marker()
    process = remote(sshd, tmp_path, host=sshd.alias).submit("cut", [mark],
                                                             output=tmp_path / "cut.log")
    assert wait_until(lambda: processes_with(mark), 20)
    psutil.Process(process.remote_pid).parent().send_signal(signal.SIGKILL)  # sshd: root@notty
    assert process.wait(30) == 255
    assert process.state is JobState.LOST
    assert "ended with 255" in process.reason and "closed" in process.reason
    assert wait_until(lambda: not processes_with(mark), 15), processes_with(mark)


def test_killed_ssh_client_ends_the_remote_job(sshd: SshServer, tmp_path: Path) -> None:
    mark = marker()
    process = remote(sshd, tmp_path, host=sshd.alias).submit("orphan", [mark],
                                                   output=tmp_path / "orphan.log")
    assert wait_until(lambda: processes_with(mark), 20)
    process.popen.kill()
    assert process.wait(30) == -9 and process.state is JobState.FAILED
    assert process.reason.startswith("its ssh client was killed by signal 9")
    assert wait_until(lambda: not processes_with(mark), 15), processes_with(mark)


def _wrong_key_config(sshd: SshServer, tmp_path: Path) -> Path:
    """An ssh_config for the test server with a key it does not authorize."""
    key = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                   check=True, stdin=subprocess.DEVNULL)
    config = tmp_path / "ssh_config"
    config.write_text(f"Host {sshd.alias}\n  HostName 127.0.0.1\n  Port {sshd.port}\n"
                      f"  User root\n  IdentityFile {key}\n  IdentitiesOnly yes\n"
                      f"  UserKnownHostsFile {sshd.dir}/known_hosts\n  LogLevel ERROR\n")
    return config


@pytest.mark.parametrize("how", ["port refused", "key refused"])
def test_refused_host_is_submit_error_with_ssh_words(sshd: SshServer, tmp_path: Path,
                                                    how: str) -> None:
    mark = marker()
    if how == "port refused":
        port = free_port()
        backend = remote(sshd, tmp_path, port=port)
        expected = f"ssh: connect to host 127.0.0.1 port {port}: Connection refused"
    else:
        backend = hpc_connect.get_backend("remote", workdir=tmp_path,
                                          ssh_config=str(_wrong_key_config(sshd, tmp_path)))
        expected = "Permission denied (publickey)"
    spec = JobSpec("refused", [mark], output=tmp_path / "r.log", workspace=tmp_path / "ws",
                   extensions={"remote_subprocess": {"host": sshd.alias}})
    with pytest.raises(SubmitError) as caught:
        backend.submission_manager().submit(spec)
    message = str(caught.value)
    assert expected in message and "exit 255" in message, message
    assert "\r" not in message and "\n" not in message
    assert isinstance(caught.value, hpc_connect.SubmissionFailedError)
    assert not processes_with(str(tmp_path)) and not processes_with(mark)
    assert backend.live_processes() == []


def test_second_generation_path(sshd: SshServer, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    """As canary_dist does it: by name, host in the spec's extensions, a future; a
    relative workspace is this side's (the script lands under our cwd)."""
    monkeypatch.chdir(tmp_path)
    backend = hpc_connect.get_backend("remote_subprocess")
    assert backend.name == "remote_subprocess"
    backend = remote(sshd, tmp_path)  # the test server's ssh_config; still no default host
    spec = JobSpec("batch", ["echo gen2 $SSH_CONNECTION", "exit 3"], cpus=2,
                   output=tmp_path / "canary-out.txt", error=tmp_path / "canary-out.txt",
                   workspace="ws", extensions={"remote_subprocess": {"host": sshd.alias}})
    future = backend.submission_manager().submit(spec)
    assert future.result(timeout=30) == 3
    assert future.proc_info()["state"] == "FAILED"
    text = (tmp_path / "canary-out.txt").read_text()
    assert text.startswith("gen2 ") and text.strip().endswith(f"127.0.0.1 {sshd.port}")
    assert list((tmp_path / "ws").glob("*batch.sh"))


def test_describe_and_topology(sshd: SshServer, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    """With a host: its ``nproc``, asked over ssh once; without: this machine's count."""
    nproc = int(subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout)
    calls = count_ssh_calls(tmp_path, monkeypatch)
    with_host = remote(sshd, tmp_path, host=sshd.alias)
    no_host = hpc_connect.get_backend("remote")
    for backend, cpus in ((with_host, nproc), (no_host, os.cpu_count())):
        assert backend.node_count == 1
        assert backend.count_per_node("cpus") == cpus
        assert backend.describe().splitlines() == [
            "Name: remote_subprocess", "Type: remote_subprocess", "Available resources:",
            "  Nodes: 1", f"  cpus per node: {cpus}"]
        assert backend.launcher == "mpi"
    assert calls() == 1


def test_missing_or_bad_host_is_one_clear_error(sshd: SshServer, tmp_path: Path) -> None:
    backend = remote(sshd, tmp_path)
    with pytest.raises(InvalidJobError, match="no host for backend 'remote_subprocess'"):
        backend.submit("nohost", ["true"])
    with pytest.raises(InvalidJobError, match=r"\['host'\]='-oProxyCommand=x'"):
        backend.submit("bad", ["true"],
                       extensions={"remote_subprocess": {"host": "-oProxyCommand=x"}})
    assert not (tmp_path / ".hpc_connect").exists()  # nothing written, nothing run


def count_ssh_calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """Put a logging ``ssh`` first on PATH; return how many times it has run."""
    calls = tmp_path / "ssh-calls"
    wrapper = tmp_path / "bin" / "ssh"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\necho x >> {calls}\nexec /usr/bin/ssh "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper.parent}{os.pathsep}{os.environ['PATH']}")
    return lambda: len(calls.read_text().splitlines()) if calls.exists() else 0


def test_status_is_local_one_ssh_per_job(sshd: SshServer, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Polling runs no ssh: three jobs polled many times cost three ssh calls."""
    calls = count_ssh_calls(tmp_path, monkeypatch)
    backend = remote(sshd, tmp_path, host=sshd.alias, polling_interval=0.05)
    group = backend.submitn(["a", "b", "c"], [["sleep 1.5"]] * 3)
    assert group.wait(30) == 0
    assert [p.returncode for p in group] == [0, 0, 0]
    assert calls() == 3


def test_time_limit_without_remote_timeout(sshd: SshServer, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A host without coreutils ``timeout`` (simulated: the remote command is built
    without it): the limit is enforced from here, the remote tree ended."""
    start = remote_subprocess.ssh.start_command
    monkeypatch.setattr(remote_subprocess.ssh, "start_command",
                        lambda *a, **kw: start(*a, **{**kw, "qtime": None}))
    mark = marker()
    process = remote(sshd, tmp_path, host=sshd.alias, cancel_grace=0.5).submit(
        "no-timeout", [mark], qtime=1, output=tmp_path / "slow.log")
    assert wait_until(lambda: processes_with(mark), 20)
    assert process.wait(30) == 124 and process.state is JobState.TIMED_OUT
    assert process.reason == "time limit of 1s reached"
    assert wait_until(lambda: not processes_with(mark), 15), processes_with(mark)
