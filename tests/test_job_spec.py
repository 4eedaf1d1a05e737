"""Bad input gives one clear error; odd-but-valid input is passed literally (no injection)."""

from __future__ import annotations

import string
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hpc_connect
from hpc_connect import InvalidJobError, JobSpec
from hpc_connect.script import JobFiles, render_script


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"cpus": 0}, "cpus=0: expected a whole number >= 1"),
        ({"cpus": -2}, "cpus=-2: expected a whole number >= 1"),
        ({"cpus": 1.5}, "cpus=1.5: expected a whole number >= 1"),
        ({"cpus": "four"}, "cpus='four': expected a whole number >= 1"),
        ({"cpus": True}, "cpus=True: expected a whole number >= 1"),
        ({"nodes": 0}, "nodes=0"),
        ({"gpus": -1}, "gpus=-1: expected a whole number >= 0"),
        ({"qtime": -1}, "qtime=-1: expected a time limit in seconds > 0 (0 or None: no limit)"),
        ({"qtime": "soon"}, "qtime='soon'"),
        ({"args": []}, "args=[]: expected at least one shell command line"),
        ({"args": ["ok", "  "]}, "args entry '  ': expected a non-empty command line"),
        ({"args": 42}, "args=42: expected a list of shell command lines"),
        ({"name": ""}, "name='': must be a non-empty single line"),
        ({"name": "a\nb"}, "name='a\\nb': must be a non-empty single line"),
        ({"variables": {"1BAD": "x"}}, "'1BAD' is not a valid environment variable name"),
        ({"variables": {"A-B": "x"}}, "'A-B' is not a valid environment variable name"),
        ({"variables": ["A=1"]}, "expected a mapping of name to value or None"),
        ({"submit_flags": "--account=x"}, "expected a list of arguments"),
        ({"output": 3}, "output=3: expected a file path"),
    ],
)
def test_bad_submit_arguments(kwargs: dict[str, object], message: str, tmp_path: Path) -> None:
    """Each bad value raises InvalidJobError (a ValueError) naming it; nothing is submitted."""
    backend = hpc_connect.get_backend("shell", workdir=tmp_path)
    call = {"name": "job", "args": ["true"], **kwargs}
    with pytest.raises(InvalidJobError) as info:
        backend.submit(call.pop("name"), call.pop("args"), **call)  # type: ignore[arg-type]
    assert message in str(info.value) and "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)
    assert not (tmp_path / ".hpc_connect").exists()


def test_numbers_as_strings_are_accepted() -> None:
    """Counts given as digit strings (from a config or CLI) are converted once, at the edge."""
    spec = JobSpec.from_submit("j", ["true"], cpus="4", nodes=2.0, qtime="90")
    assert (spec.cpus, spec.nodes, spec.qtime) == (4, 2, 90.0)
    for no_limit in (0, 0.0, None):  # seed-era clients pass 0 (a cached mean run time)
        assert JobSpec.from_submit("j", ["true"], qtime=no_limit).qtime is None


def test_unknown_keywords_reach_the_backend_as_extra() -> None:
    """Backend-specific keywords are kept in spec.extra; known ones become fields."""
    spec = JobSpec.from_submit("j", ["true"], tasks=4, memory_mb=100, gpu_model="a100")
    assert (spec.tasks, spec.memory_mb, spec.extra) == (4, 100, {"gpu_model": "a100"})


nasty_text = st.lists(
    st.sampled_from(
        [
            *string.printable.replace("\x0b", "").replace("\x0c", ""),
            "$(",
            "$(echo x)",
            "`id`",
            "'",
            '"',
            "\\",
            "é",
            "∑",
            "🙂",
            " ",
            "\t",
            "\n",
            "${X}",
        ]
    ),
    max_size=25,
).map("".join)
SHELL_OWNED = {"PATH", "HOME", "PWD", "SHLVL", "OLDPWD", "IFS", "_", "ENV", "SHELLOPTS", "PS4"}
identifiers = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True).filter(
    lambda n: n not in SHELL_OWNED and not n.startswith(("BASH", "LC_", "LANG"))
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=nasty_text.filter(lambda s: s.strip() and "\n" not in s and "\r" not in s),
    values=st.dictionaries(identifiers, nasty_text, max_size=4),
)
def test_script_runs_exactly_the_given_commands(
    name: str, values: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Property: names and variable values with quotes, $(), backticks, newlines and unicode
    reach the job literally; the rendered script is run with bash and reports them back."""
    tmp = tmp_path_factory.mktemp("prop")
    commands = [f"printf '%s\\0' \"${{{key}}}\" >> out" for key in values] or ["true"]
    spec = JobSpec(name=name, commands=commands, variables=values, workdir=tmp)
    files = JobFiles.for_spec(spec, tmp, "job")
    files.script.write_text(render_script(spec, files))
    result = subprocess.run(["bash", str(files.script)], capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr
    got = (tmp / "out").read_bytes().split(b"\0")[:-1] if values else []
    assert got == [v.encode() for v in values.values()]
    assert files.read_exitcode() == 0


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(command=nasty_text.filter(lambda s: s.strip() and "\0" not in s))
def test_command_text_cannot_break_the_script(
    command: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Property: whatever a command line holds, the script runs it as bash would run it alone
    (same status) and the next command still runs: a command can't escape its slot."""
    tmp = tmp_path_factory.mktemp("cmd")
    # alone: a one-line script file (bash -c reports some syntax errors as 127, a file
    # as 1), in an empty folder (files one run leaves, ``>%``, change globs like ``?``)
    alone_script = tmp_path_factory.mktemp("alone-script") / "alone.sh"
    alone_script.write_text(f"eval {_q(command)}\n")
    alone = subprocess.run(
        ["bash", str(alone_script)], capture_output=True,
        cwd=tmp_path_factory.mktemp("alone"), timeout=30,
    ).returncode
    spec = JobSpec(name="p", commands=[command, "echo after > after.txt"], workdir=tmp)
    files = JobFiles.for_spec(spec, tmp_path_factory.mktemp("files"), "job")
    files.script.write_text(render_script(spec, files))
    status = subprocess.run(
        ["bash", str(files.script)], capture_output=True, cwd=tmp, timeout=30
    ).returncode
    assert status == alone
    assert (tmp / "after.txt").exists() == (alone == 0)


def _q(text: str) -> str:
    import shlex

    return shlex.quote(text)
