"""``hpc-connect cancel --run RUN``: cancel every queued or running job of an earlier run.

The Snakemake executor names each job ``smk-<run>-<rule>-<jobid>`` and prints the run id
when it starts (``hpc-connect: backend slurm, run 1a2b3c4d, ...``): after a crash, this
gives a clean slate instead of a resume.
"""

from __future__ import annotations

import argparse
import re

from .errors import HPCConnectError
from .registry import get_backend

_RUN = re.compile(r"[A-Za-z0-9_.-]+\Z")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cancel = sub.add_parser("cancel", help="cancel every queued or running job of a run")
    cancel.add_argument("--run", required=True,
                        help="the run id the Snakemake executor printed (jobs smk-<run>-...)")
    cancel.add_argument("--backend", help="backend name (default: configured, else shell)")


def main(args: argparse.Namespace) -> int:
    if not _RUN.match(args.run):
        raise HPCConnectError(f"--run {args.run!r}: expected a run id of letters, digits, "
                              "'_', '.' or '-' (the executor prints it when it starts)")
    backend = get_backend(args.backend, config_file=args.config_file)
    jobs = backend.jobs_named(f"smk-{args.run}-")
    if not jobs:
        print(f"no queued or running {backend.name} job of run {args.run}")
        return 0
    backend.cancel_many(jobs)
    print(f"cancelled {len(jobs)} {backend.name} job(s) of run {args.run}: "
          + " ".join(p.jobid for p in jobs))
    return 0
