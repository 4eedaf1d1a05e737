"""Refuse submit flags that repeat an option the backend already sets for the job.

A flag given twice leaves the scheduler to pick one silently (sbatch takes the last,
qsub the first, ...), so a job would run with a time, memory or name the user did not
mean. Each backend names its own options and their aliases; this module compares.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from .errors import InvalidJobError

#: one scheduler option: flag and value, or flag alone (value None)
Option = tuple[str, str | None]


def _keys(flag: str, value: str | None, keyed: Collection[str]) -> list[str]:
    """The identities an option occupies: the flag, or ``-l walltime`` style for keyed
    flags that may repeat with different resources (PBS ``-l``)."""
    if flag not in keyed:
        return [flag]
    items = (value or "").split(",")
    return [f"{flag} {item.split('=', 1)[0].split(':', 1)[0]}" for item in items if item]


def reject_repeated(backend: str, ours: Sequence[Option], flags: Sequence[str], *,
                    aliases: Mapping[str, str] = {}, keyed: Collection[str] = (),
                    allowed: Collection[str] = (), joined_short: bool = True) -> None:
    """Raise ``InvalidJobError`` if ``flags`` set an option that ``ours`` already sets.

    ``aliases`` maps other spellings (``-t``) to the one in ``ours`` (``--time``);
    ``keyed`` flags may repeat for different resource names; ``allowed`` flags may
    repeat freely (e.g. LSF ``-R``, which the scheduler merges). ``joined_short``:
    ``-pdebug`` is ``-p debug`` (getopt); False where one-dash words are whole flags (LSF).
    """
    def canonical(flag: str) -> str:
        return aliases.get(flag, flag)

    taken: dict[str, str] = {}
    for flag, setting in ours:
        if flag in allowed:
            continue
        shown = flag if setting is None else f"{flag} {setting}"
        for key in _keys(canonical(flag), setting, keyed):
            taken.setdefault(key, shown)
    shorts = {f for f in (*taken, *aliases) if len(f) == 2 and f.startswith("-")
              and joined_short}
    for i, token in enumerate(flags):
        if not token.startswith("-") or token == "-":
            continue
        if token.startswith("--"):
            flag, eq, inline = token.partition("=")
            value: str | None = inline if eq else None
        else:
            flag = next((s for s in shorts if token.startswith(s)), token.partition("=")[0])
            value = token[len(flag):] or None
        flag = canonical(flag)
        if flag in keyed and value is None:
            value = flags[i + 1] if i + 1 < len(flags) else ""
        for key in _keys(flag, value, keyed):
            if key in taken:
                raise InvalidJobError(
                    f"{backend}: submit flag {token!r} repeats {taken[key]!r}, which "
                    "hpc-connect already sets for this job (from its name, files or "
                    "resources); give it one way only")
