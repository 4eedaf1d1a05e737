"""Snakemake resources → submit keyword arguments (snakemake_executor_hpc_connect.resources)."""

from __future__ import annotations

from typing import Any

import pytest

from hpc_connect import JobSpec
from hpc_connect.errors import InvalidJobError
from snakemake_executor_hpc_connect.logs import log_path
from snakemake_executor_hpc_connect.mpi import MPIDefault, add_rule_defaults, mpi_default
from snakemake_executor_hpc_connect.resources import runtime_seconds, submit_kwargs


def kw(threads: int | None = 1, backend: str = "shell", **resources: Any) -> dict[str, Any]:
    return submit_kwargs(resources, threads=threads, backend=backend)


def test_threads_become_cpus() -> None:
    """A plain rule is one task with its threads as CPUs, nothing else."""
    assert kw(threads=4) == {"cpus": 4, "tasks": 1}


def test_cpus_per_task_times_tasks() -> None:
    """cpus_per_task (else threads) times tasks gives the job's CPUs; tasks is passed on."""
    assert kw(threads=8, tasks=3, cpus_per_task=2) == {"cpus": 6, "tasks": 3}
    assert kw(threads=2, tasks=4) == {"cpus": 8, "tasks": 4}


def test_nodes_gpus_and_model() -> None:
    """nodes, gpu/gpus and gpu_model are passed on; gpu_model lands in spec.extra."""
    out = kw(nodes=2, gpus=1, gpu_model="a100")
    assert out == {"cpus": 1, "tasks": 1, "nodes": 2, "gpus": 1, "gpu_model": "a100"}
    assert kw(gpu="2")["gpus"] == 2
    spec = JobSpec.from_submit("j", ["true"], **out)
    assert spec.extra == {"gpu_model": "a100"} and spec.gpus == 1 and spec.nodes == 2


@pytest.mark.parametrize(("runtime", "seconds"), [
    (90, 5400.0), (1.5, 90.0), ("90", 5400.0), ("1h30m", 5400.0), ("2d", 172800.0),
    ("45s", 45.0), ("1h 5min", 3900.0),
])
def test_runtime_to_qtime(runtime: Any, seconds: float) -> None:
    """runtime in minutes or as a Snakemake time string becomes qtime in seconds."""
    assert runtime_seconds(runtime) == seconds
    assert kw(runtime=runtime)["qtime"] == seconds


def test_memory() -> None:
    """mem_mb gives memory_mb; mem_mb_per_cpu is multiplied by the CPUs and wins."""
    assert kw(mem_mb=1000)["memory_mb"] == 1000
    assert kw(threads=4, mem_mb_per_cpu=500, mem_mb=1000)["memory_mb"] == 2000
    assert kw(mem_mb=1.5)["memory_mb"] == 2


@pytest.mark.parametrize("zero", [0, "0", 0.0, "", None])
def test_zero_means_not_requested(zero: Any) -> None:
    """0 or empty mem_mb, mem_mb_per_cpu, runtime, gpu/gpus: nothing asked for (as in the
    Slurm executor plugin, and what Snakemake's own cluster tests pass)."""
    out = kw(threads=2, mem_mb=zero, mem_mb_per_cpu=zero, runtime=zero, gpu=zero, gpus=zero)
    assert out == {"cpus": 2, "tasks": 1}
    assert kw(mem_mb=zero, mem_mb_per_cpu=100)["memory_mb"] == 100
    assert kw(mem_mb=100, mem_mb_per_cpu=zero)["memory_mb"] == 100


def test_placement_names_and_defaults() -> None:
    """Generic names, their aliases and the Slurm plugin's names all set the core's
    placement fields; rule values win over the run's defaults."""
    out = kw(slurm_partition="long", slurm_account="proj_x", qos="high", constraint="a100",
             reservation="r1", clusters="c2")
    assert {k: out[k] for k in ("partition", "account", "qos", "constraint", "reservation",
                                "clusters")} == {
        "partition": "long", "account": "proj_x", "qos": "high", "constraint": "a100",
        "reservation": "r1", "clusters": "c2"}
    assert kw(queue="long", project="p")["partition"] == "long"
    assert kw(queue="long", project="p")["account"] == "p"
    assert kw(partition="long", slurm_partition="long")["partition"] == "long"  # agree
    defaults = {"partition": "debug", "account": "dflt", "qos": None}
    out = submit_kwargs({"partition": "long"}, threads=1, backend="slurm", defaults=defaults)
    assert (out["partition"], out["account"], "qos" in out) == ("long", "dflt", False)
    spec = JobSpec.from_submit("j", ["true"], **out)
    assert (spec.partition, spec.account) == ("long", "dflt")


def test_slurm_plugin_gpu_resources() -> None:
    """gpu + gpu_model, gres, cpus_per_gpu, tasks_per_gpu as in the Slurm plugin."""
    out = kw(gpu=2, gpu_model="a100", cpus_per_gpu=4, tasks_per_gpu=1)
    assert {k: out[k] for k in ("gpus", "gpu_model", "cpus_per_gpu", "tasks_per_gpu")} == {
        "gpus": 2, "gpu_model": "a100", "cpus_per_gpu": 4, "tasks_per_gpu": 1}
    assert kw(gres="gpu:a100:2")["gres"] == "gpu:a100:2"
    assert "cpus_per_gpu" not in kw(gpu=1, cpus_per_gpu=0)


def test_extra_submit_flags_are_shell_split() -> None:
    """<backend>_extra and hpc_connect_submit_flags are split like a shell would."""
    out = kw(backend="slurm", slurm_extra="--qos=long --comment='two words'",
             hpc_connect_submit_flags="--requeue", shell_extra="--ignored")
    assert out["submit_flags"] == ["--qos=long", "--comment=two words", "--requeue"]


@pytest.mark.parametrize(("resources", "message"), [
    ({"tasks": -1}, "resource tasks=-1: expected a whole number >= 1"),
    ({"tasks": "four"}, "resource tasks='four'"),
    ({"cpus_per_task": 0}, "resource cpus_per_task=0"),
    ({"cpus_per_task": 1.5}, "resource cpus_per_task=1.5"),
    ({"nodes": True}, "resource nodes=True"),
    ({"gpus": -1}, "resource gpus=-1: expected a whole number >= 0"),
    ({"gpu": 1, "gpus": 2}, "disagree"),
    ({"gpu_model": "a100"}, "needs gpu"),
    ({"runtime": "soon"}, "resource runtime='soon'"),
    ({"runtime": -5}, "resource runtime=-5"),
    ({"runtime": "1h30"}, "resource runtime='1h30'"),
    ({"mem_mb": "lots"}, "resource mem_mb='lots'"),
    ({"mem_mb_per_cpu": -1}, "resource mem_mb_per_cpu=-1: expected a number of megabytes >= 0"),
    ({"mem_mb": "0.5G"}, "resource mem_mb='0.5G'"),
    ({"runtime": "-1h"}, "resource runtime='-1h'"),
    ({"gpus": "many"}, "resource gpus='many'"),
    ({"partition": "long", "slurm_partition": "short"},
     "resources partition='long' and slurm_partition='short' disagree"),
    ({"account": ["a"]}, "resource account=['a']: expected a string"),
    ({"gres": "gpu"}, "resource gres='gpu': expected NAME[:TYPE]:COUNT"),
    ({"gres": "gpu:1", "gpu": 1}, "resources gres='gpu:1' and gpu=1: set one of them"),
    ({"gpu_model": "a100", "gpu": 0}, "resource gpu_model='a100' needs gpu"),
    ({"gpu_model": "a 100", "gpu": 1}, "resource gpu_model='a 100'"),
    ({"cpus_per_gpu": 4}, "resource cpus_per_gpu=4 needs gpu"),
    ({"hpc_connect_submit_flags": "--comment='open"}, "No closing quotation"),
    ({"tasks": 4, "mpi": ""}, "tasks=4 needs an MPI launcher in resources.mpi, which is empty"),
])
def test_bad_values_name_the_resource(resources: dict[str, Any], message: str) -> None:
    """Every bad value raises InvalidJobError with a one-line message naming the resource."""
    with pytest.raises(InvalidJobError) as info:
        submit_kwargs(resources, threads=1, backend="shell")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_tasks_need_a_launcher() -> None:
    """tasks > 1 with no launcher for resources.mpi fails and says why; tasks=1 is fine."""
    with pytest.raises(InvalidJobError, match=r"tasks=2 .* not available: mpiexec missing"):
        submit_kwargs({"tasks": 2}, threads=1, backend="shell", mpi_available=False,
                      mpi_problem="mpiexec missing")
    assert submit_kwargs({"tasks": 1}, threads=1, backend="shell",
                         mpi_available=False) == {"cpus": 1, "tasks": 1}
    assert submit_kwargs({}, threads=3, backend="shell",
                         mpi_available=False) == {"cpus": 3, "tasks": 1}
    assert submit_kwargs({"tasks": 2, "mpi": "mpirun"}, threads=1, backend="shell",
                         mpi_available=False)["tasks"] == 2


def test_translation_is_accepted_by_the_core() -> None:
    """What the translation produces is a valid JobSpec (the core does not re-check names)."""
    out = kw(threads=2, tasks=2, nodes=1, runtime="10m", mem_mb_per_cpu=100,
             hpc_connect_submit_flags="-x")
    spec = JobSpec.from_submit("j", ["true"], **out)
    assert (spec.cpus, spec.tasks, spec.qtime, spec.memory_mb, spec.submit_flags) == (
        4, 2, 600.0, 400, ("-x",))


def test_mpi_default_per_launcher() -> None:
    """The mpi launcher gives a bare 'mpiexec'; a missing program gives None and a reason."""
    import shutil

    default = mpi_default("mpi")
    if shutil.which("mpiexec"):
        assert default.command == "mpiexec" and default.resource_arg() == "mpi='mpiexec'"
    else:
        assert default.command is None and "not found" in default.problem


def test_rule_defaults_do_not_override_a_rule() -> None:
    """The default is added only to rules that set no mpi of their own."""
    class Rule:
        def __init__(self, resources: dict[str, Any]) -> None:
            self.resources = resources

    own, plain = Rule({"mpi": "mpirun"}), Rule({})
    add_rule_defaults([own, plain], MPIDefault("srun"))
    assert own.resources["mpi"] == "mpirun" and plain.resources["mpi"] == "srun"
    add_rule_defaults([Rule({})], MPIDefault(None, "missing"))  # no command: nothing added


def test_log_paths(tmp_path: Any) -> None:
    """Logs go to rule_<name>/<wildcards>/<jobid>.log; retries and odd values stay safe."""
    assert log_path(tmp_path, rule="count", wildcards={"sample": "a"}, jobid=7) == (
        tmp_path / "rule_count" / "sample=a" / "7.log")
    assert log_path(tmp_path, rule="all", wildcards={}, jobid=1, attempt=2) == (
        tmp_path / "rule_all" / "1.attempt2.log")
    odd = log_path(tmp_path, rule="r", wildcards={"p": "../x/y"}, jobid=3)
    assert odd.parent.parent == tmp_path / "rule_r" and "/" not in odd.parent.name
    group = log_path(tmp_path, rule="g1", wildcards={}, jobid=4, group=True)
    assert group.parent.name == "group_g1"
