"""Layer 3: the PSI/J-style base a batch scheduler fills in, and its helpers.

The extension API for scheduler authors: ``BatchBackend`` (supply the directives, the
submit/status/cancel commands and their parsing; the base owns the script, retries,
the one-query-per-cycle polling, exit codes from the script's status file and the
``lost`` verdict), ``BatchProcess``, ``SchedulerStatus``; option helpers (``Option``,
``hms``, ``minutes``, ``per_node``, ``directive_lines``, ``option_argv``,
``last_line``, ``placement_options``, ``tolerant_status_ok``, ``reject_repeated``);
finding a job whose submit reply was lost (``pbs_match``, ``lsf_match``,
``flux_match``).

Modules: ``_backend`` (BatchBackend), ``_options`` (scheduler options and flags),
``_queue_match`` (matching a listing to a submitted script).
"""

from ._backend import UNREADABLE, BatchBackend, BatchProcess, SchedulerStatus
from ._options import (
    Option,
    directive_lines,
    hms,
    last_line,
    minutes,
    option_argv,
    per_node,
    placement_options,
    reject_repeated,
    tolerant_status_ok,
)
from ._queue_match import flux_match, lsf_match, pbs_match

__all__ = [
    "UNREADABLE",
    "BatchBackend",
    "BatchProcess",
    "Option",
    "SchedulerStatus",
    "directive_lines",
    "flux_match",
    "hms",
    "last_line",
    "lsf_match",
    "minutes",
    "option_argv",
    "pbs_match",
    "per_node",
    "placement_options",
    "reject_repeated",
    "tolerant_status_ok",
]
