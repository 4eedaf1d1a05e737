"""How much hpc-launch adds to starting an MPI program.

Runs, interleaved in one process, ``hpc-launch -n 4 true`` and its floor: the same
Python interpreter doing nothing but ``os.execvp("mpiexec", ["mpiexec", "-n", "4",
"true"])``. Prints the median wall time of each, their ratio (target <= 1.3), and the
import time of ``hpc_connect`` and of what ``hpc-launch`` imports.

    python bench/launch_overhead.py [--runs 60]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import sysconfig
import time

FLOOR = "import os; os.execvp('mpiexec', ['mpiexec', '-n', '4', 'true'])"


def hpc_launch_path() -> str:
    """The console script of this interpreter's environment (not a pyenv shim)."""
    path = os.path.join(sysconfig.get_path("scripts"), "hpc-launch")
    if not os.path.exists(path):
        sys.exit(f"hpc-launch is not installed for {sys.executable}: pip install .")
    return path


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def import_time(statement: str, repeats: int = 5) -> float:
    """Cumulative milliseconds of the top-level import in ``python -X importtime`` (best of
    ``repeats``: the machine is shared)."""
    name = statement.split()[1]
    best = float("inf")
    for _ in range(repeats):
        err = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", statement],
            capture_output=True,
            text=True,
            check=True,
        ).stderr
        for line in err.splitlines():
            match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|\s*(\S+)$", line)
            if match and match.group(2) == name:
                best = min(best, int(match.group(1)) / 1000)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60)
    args = parser.parse_args()
    if shutil.which("mpiexec") is None:
        sys.exit("mpiexec not found: apt-get install mpich")
    ours = [hpc_launch_path(), "-n", "4", "true"]
    floor = [sys.executable, "-c", FLOOR]
    for _ in range(3):  # warm caches (and hpc_connect's vendor cache)
        timed(ours), timed(floor)
    samples: dict[str, list[float]] = {"floor": [], "hpc-launch": []}
    for _ in range(args.runs):
        samples["floor"].append(timed(floor))
        samples["hpc-launch"].append(timed(ours))
    med = {k: statistics.median(v) for k, v in samples.items()}
    print(f"runs: {args.runs} each, interleaved; interpreter {sys.executable}")
    print(f"floor      (python -c execvp mpiexec -n 4 true): median {med['floor'] * 1e3:7.1f} ms")
    print(
        f"hpc-launch -n 4 true:                            median {med['hpc-launch'] * 1e3:7.1f} ms"
    )
    print(f"ratio hpc-launch / floor: {med['hpc-launch'] / med['floor']:.2f}  (target <= 1.3)")
    print(f"import hpc_connect:     {import_time('import hpc_connect'):6.2f} ms cumulative")
    print(f"import hpc_connect.cli: {import_time('import hpc_connect.cli'):6.2f} ms cumulative")
    print(
        f"import hpc_connect.builtin_launchers.mpi: "
        f"{import_time('import hpc_connect.builtin_launchers.mpi'):6.2f} ms cumulative"
    )


if __name__ == "__main__":
    main()
