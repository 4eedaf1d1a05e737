"""Placement fields (partition, account, qos, constraint, reservation, clusters) and the
refusal of submit flags that repeat an option hpc-connect sets.

PBS, LSF and Flux cannot run here: their tests check the generated options and argv
(what qsub/bsub/flux batch would receive). Grid Engine's and Slurm's are checked the
same way and, for Slurm, in test_snakemake_placement.py on the real cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hpc_connect.batch import BatchBackend
from hpc_connect.builtin_backends.flux import FluxBackend
from hpc_connect.builtin_backends.lsf import LSFBackend
from hpc_connect.builtin_backends.pbs import PBSBackend, TorqueBackend
from hpc_connect.builtin_backends.sge import SGEBackend
from hpc_connect.builtin_backends.slurm import SlurmBackend
from hpc_connect.errors import InvalidJobError
from hpc_connect.job import JobSpec
from hpc_connect.script import JobFiles, render_script

PLACE = {"partition": "long", "account": "proj_x", "qos": "high", "constraint": "a100",
         "reservation": "maint", "clusters": "c2"}


def files(tmp_path: Path) -> JobFiles:
    return JobFiles(tmp_path / "j.sh", tmp_path / "j.out", tmp_path / "j.out",
                    tmp_path / "j.sh.exitcode")


def argv(backend: Any, tmp_path: Path, **fields: Any) -> list[str]:
    return list(backend.submit_argv(JobSpec(name="j", commands=["true"], **fields),
                                    files(tmp_path)))


def test_fields_validated_at_the_edge() -> None:
    spec = JobSpec.from_submit("j", ["true"], partition=" long ", account=123)
    assert (spec.partition, spec.account, spec.qos) == ("long", "123", None)
    for field, bad in (("partition", "a\nb"), ("account", ""), ("qos", ["x"]),
                       ("clusters", True)):
        with pytest.raises(InvalidJobError, match=f"^{field}="):
            JobSpec.from_submit("j", ["true"], **{field: bad})


def test_slurm_maps_every_field(tmp_path: Path) -> None:
    args = argv(SlurmBackend(), tmp_path, **PLACE)
    for field, value in PLACE.items():
        assert f"--{field}={value}" in args


@pytest.mark.parametrize(("backend", "expected"), [
    (PBSBackend(), ["-q", "long", "-A", "proj_x"]),
    (TorqueBackend(), ["-q", "long", "-A", "proj_x"]),
    (LSFBackend(), ["-q", "long", "-P", "proj_x", "-R", "select[a100]", "-U", "maint",
                    "-clusters", "c2"]),
    (FluxBackend(), ["--queue", "long", "--bank", "proj_x", "--requires", "a100"]),
    (SGEBackend(pe="smp"), ["-q", "long", "-P", "proj_x", "-ar", "maint"]),
])
def test_other_backends_map_their_equivalents(backend: Any, expected: list[str],
                                              tmp_path: Path) -> None:
    supported = {k: v for k, v in PLACE.items() if v in expected or f"select[{v}]" in expected}
    args = argv(backend, tmp_path, **supported)
    pairs = list(zip(expected[::2], expected[1::2], strict=True))
    assert all(args[args.index(flag) + 1] == value for flag, value in pairs)
    directives = backend.directives(JobSpec(name="j", commands=["true"], **supported),
                                    files(tmp_path))
    assert any("long" in line for line in directives)  # the script records them too


@pytest.mark.parametrize(("backend", "field"), [
    (PBSBackend(), "qos"), (PBSBackend(), "constraint"), (PBSBackend(), "reservation"),
    (PBSBackend(), "clusters"), (LSFBackend(), "qos"), (FluxBackend(), "qos"),
    (FluxBackend(), "reservation"), (FluxBackend(), "clusters"),
    (SGEBackend(pe="smp"), "qos"), (SGEBackend(pe="smp"), "constraint"),
    (SGEBackend(pe="smp"), "clusters"),
])
def test_unsupported_field_is_one_clear_error(backend: Any, field: str,
                                              tmp_path: Path) -> None:
    with pytest.raises(InvalidJobError) as info:
        argv(backend, tmp_path, **{field: PLACE[field]})
    message = str(info.value)
    assert message.startswith(f"{backend.name}: {field}={PLACE[field]!r} has no equivalent")
    assert "\n" not in message


@pytest.mark.parametrize(("backend", "fields", "flags", "ours"), [
    (SlurmBackend(), {"qtime": 600}, ["--time=10"], "--time"),
    (SlurmBackend(), {"qtime": 600}, ["-t", "10"], "--time"),
    (SlurmBackend(), {}, ["-Jother"], "--job-name"),
    (SlurmBackend(), {}, ["--output", "x.log"], "--output"),
    (SlurmBackend(), {"memory_mb": 100}, ["--mem=4G"], "--mem"),
    (SlurmBackend(), {"cpus": 4, "tasks": 2}, ["-c", "8"], "--cpus-per-task"),
    (SlurmBackend(), {"partition": "long"}, ["-p", "debug"], "--partition"),
    (SlurmBackend(), {"account": "a"}, ["--account=b"], "--account"),
    (PBSBackend(), {"qtime": 600}, ["-l", "walltime=1:00:00"], "-l walltime"),
    (PBSBackend(), {}, ["-N", "other"], "-N"),
    (PBSBackend(), {"partition": "long"}, ["-qdebug"], "-q"),
    (LSFBackend(), {"qtime": 600}, ["-W", "5"], "-W"),
    (LSFBackend(), {}, ["-o", "x.log"], "-oo"),
    (FluxBackend(), {"qtime": 600}, ["--time-limit=5m"], "-t"),
    (FluxBackend(), {"cpus": 2}, ["--nslots=4"], "-n"),
    (SGEBackend(pe="smp"), {"qtime": 600}, ["-l", "h_rt=1:00:00"], "-l h_rt"),
    (SGEBackend(pe="smp"), {}, ["-N", "other"], "-N"),
    (SGEBackend(pe="smp"), {"partition": "long"}, ["-q", "debug"], "-q"),
])
def test_repeated_flag_names_both(backend: Any, fields: dict[str, Any], flags: list[str],
                                  ours: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidJobError) as info:
        argv(backend, tmp_path, submit_flags=flags, **fields)
    message = str(info.value)
    assert message.startswith(f"{backend.name}: submit flag {flags[0]!r} repeats '{ours}")


@pytest.mark.parametrize(("backend", "flags"), [
    (SlurmBackend(), ["--time=10", "-p", "debug", "--mem=4G", "--requeue"]),  # not set by us
    (PBSBackend(), ["-l", "place=scatter", "-q", "debug"]),
    (LSFBackend(), ["-R", "rusage[mem=100]", "-nnodes", "2"]),
    (FluxBackend(), ["--exclusive", "-q", "debug"]),
    (SGEBackend(pe="smp"), ["-l", "h_vmem=2G", "-q", "debug", "-R", "y"]),
])
def test_flags_we_do_not_set_pass_through(backend: Any, flags: list[str],
                                          tmp_path: Path) -> None:
    args = argv(backend, tmp_path, submit_flags=flags, cpus=1)
    assert args[-len(flags) - 1:-1] == flags


def test_slurm_gpu_extras_and_srun_cpus(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Slurm-plugin extras: gres, tasks/cpus per GPU; --cpus-per-task jobs export
    SRUN_CPUS_PER_TASK (srun >= 22.05 does not inherit it)."""
    b = SlurmBackend()
    args = argv(b, tmp_path, gpus=2, cpus=8, tasks=2,
                extra={"gpu_model": "a100", "tasks_per_gpu": 1, "cpus_per_gpu": 4})
    assert {"--gpus=a100:2", "--ntasks-per-gpu=1", "--cpus-per-gpu=4"} <= set(args)
    assert not any(a.startswith(("--ntasks=", "--cpus-per-task=")) for a in args)
    assert "--gres=gpu:1" in argv(b, tmp_path, extra={"gres": "gpu:1"})
    spec = JobSpec(name="j", commands=["true"], cpus=6, tasks=2)
    assert "--cpus-per-task=3" in b.submit_argv(spec, files(tmp_path))
    captured: list[JobSpec] = []
    monkeypatch.setattr(BatchBackend, "submit_spec", lambda self, s: captured.append(s))
    b.submit_spec(spec)
    script = render_script(captured[0], files(tmp_path))
    assert "export SRUN_CPUS_PER_TASK=3" in script
