"""``set_debug`` and ``set_logging_level``: how much the ``hpc_connect`` logger says."""

from __future__ import annotations

import logging

LOGGER = "hpc_connect"


def set_logging_level(level: int | str) -> None:
    """Set the ``hpc_connect`` logger's level (``logging.DEBUG``, ``"info"``, ...).

    If nothing handles its records yet, a handler to stderr is added.
    """
    if isinstance(level, str):
        number = logging.getLevelName(level.upper())
        if not isinstance(number, int):
            from .errors import ConfigError

            raise ConfigError(f"logging level {level!r}: expected one of debug, info, "
                              "warning, error, critical (or a number)")
        level = number
    logger = logging.getLogger(LOGGER)
    logger.setLevel(level)
    if not logger.hasHandlers():
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("==> hpc_connect: %(levelname)s: %(message)s"))
        logger.addHandler(handler)


def set_debug(debug: bool) -> None:
    """Debug messages on (``True``) or back to warnings only (``False``)."""
    set_logging_level(logging.DEBUG if debug else logging.WARNING)


_FROM_ENVIRONMENT: list[bool] = []


def from_environment() -> None:
    """Once per process: ``$HPC_CONNECT_DEBUG`` (yes/true/1/on) or
    ``$HPC_CONNECT_LOG_LEVEL`` (a level name) set the ``hpc_connect`` logger's level."""
    import os

    if _FROM_ENVIRONMENT:
        return
    _FROM_ENVIRONMENT.append(True)
    logger = logging.getLogger(LOGGER)
    if os.environ.get("HPC_CONNECT_DEBUG", "").lower() in ("yes", "true", "1", "on"):
        logger.setLevel(logging.DEBUG)
    elif os.environ.get("HPC_CONNECT_LOG_LEVEL"):
        number = logging.getLevelName(os.environ["HPC_CONNECT_LOG_LEVEL"].upper())
        if isinstance(number, int):
            logger.setLevel(number)
