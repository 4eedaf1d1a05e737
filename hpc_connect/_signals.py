"""``SigtermAsExit``: in the main thread, SIGTERM becomes ``SystemExit(128 + 15)`` for a
block, so that the block's clean-up (cancelling jobs, releasing an allocation) runs as it
does for Ctrl-C. The handler only raises; it does no I/O."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


class SigtermAsExit:
    """``install()`` where SIGTERM still has its default action (main thread only);
    ``restore()`` puts back what was there. Installing twice is harmless."""

    def __init__(self) -> None:
        self._saved: Any = None

    def install(self) -> None:
        if (self._saved is None and threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL):
            self._saved = signal.signal(signal.SIGTERM, _exit_on_signal)

    def restore(self) -> None:
        if self._saved is not None:
            signal.signal(signal.SIGTERM, self._saved)
            self._saved = None
