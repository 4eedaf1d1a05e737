"""Job files only their owner can read: private folders and files, no symlink following.

Job scripts can hold secrets (``variables``) and status files decide a job's fate, on
file systems shared by many users. So: folders we create are mode 0700, scripts 0700,
status files and logs 0600, whatever the umask; nothing is created or opened through
a symbolic link; a status file we did not write (another owner, or writable by group
or others) is ignored with a warning. Paths the caller names are respected: folders
and files that already exist keep their modes; only what we create is made private.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from ..errors import UnsafePathError

log = logging.getLogger("hpc_connect")

#: modes of what we create
DIR_MODE, SCRIPT_MODE, FILE_MODE = 0o700, 0o700, 0o600

_warned: set[str] = set()


def _unsafe(path: Path, why: str) -> UnsafePathError:
    return UnsafePathError(f"{path}: {why}; hpc_connect does not write job files through it "
                           "(remove it or choose another folder)")


def _own_dir(path: Path) -> None:
    """Check that ``path`` is a real folder of ours (not a link) and make it 0700."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        if path.is_symlink():
            raise _unsafe(path, "is a symbolic link") from None
        raise _unsafe(path, "is not a folder") from None
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid():
            raise _unsafe(path, f"is owned by uid {st.st_uid}, not by you (uid {os.geteuid()})")
        if stat.S_IMODE(st.st_mode) != DIR_MODE:
            os.fchmod(fd, DIR_MODE)
    finally:
        os.close(fd)


def private_dir(path: Path, root: Path | None = None) -> Path:
    """Make sure folder ``path`` exists; what we create is 0700 and never a followed link.

    ``root`` (an ancestor of ``path`` or ``path`` itself) marks hpc_connect's own area,
    e.g. ``<workdir>/.hpc_connect``: every folder from there down must be a real folder
    owned by us, and is made 0700. Existing folders above it are the caller's and are
    left as they are.
    """
    path = Path(os.path.abspath(path))
    chain = [path, *path.parents][::-1]  # "/" first
    ours = Path(os.path.abspath(root)) if root is not None else None
    mine = False
    for folder in chain:
        mine = mine or folder == ours
        try:
            if os.path.lexists(folder):
                raise FileExistsError
            os.mkdir(folder, DIR_MODE)
        except FileExistsError:
            if mine:
                _own_dir(folder)
            continue
        _own_dir(folder)  # just created: exact 0700 whatever the umask
        mine = True  # below a folder we created, everything is ours
    return path


def create_private(path: Path, mode: int = FILE_MODE) -> int:
    """Open ``path`` for writing (truncated), not through a symlink; return the fd.

    A new file gets exactly ``mode``; an existing one (a path the caller named) keeps its
    mode. Raises ``UnsafePathError`` if ``path`` is a symbolic link.
    """
    flags = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        try:
            fd = os.open(path, flags | os.O_TRUNC)
        except OSError as exc:
            if os.path.islink(path):
                raise _unsafe(path, "is a symbolic link") from None
            raise exc
        return fd
    os.fchmod(fd, mode)
    return fd


def ensure_private_file(path: Path, mode: int = FILE_MODE) -> None:
    """Create ``path`` empty with ``mode`` unless it exists; refuse a symbolic link.

    Used for logs a scheduler writes itself: it then writes into our private file.
    """
    if os.path.islink(path):
        raise _unsafe(path, "is a symbolic link")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     mode)
    except FileExistsError:
        return
    os.fchmod(fd, mode)
    os.close(fd)


def read_trusted(path: Path) -> str | None:
    """The text of a file we wrote, or None (missing, or not trustworthy: warned once).

    Trusted means: a regular file, not a symbolic link, owned by us, and not writable by
    group or others.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError:
        return _distrust(path, "is a symbolic link" if os.path.islink(path) else "unreadable")
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            return _distrust(path, "is not a regular file")
        if st.st_uid != os.geteuid():
            return _distrust(path, f"is owned by uid {st.st_uid}, not by you")
        if st.st_mode & 0o022:
            return _distrust(path, f"is writable by group or others (mode "
                                   f"{stat.S_IMODE(st.st_mode):04o})")
        return fh.read().decode(errors="replace")


def _distrust(path: Path, why: str) -> str | None:
    """Warn (once per path) that a status file is ignored; None, for ``read_trusted``."""
    if str(path) not in _warned:
        _warned.add(str(path))
        log.warning("ignoring job status file %s: it %s, so hpc_connect did not write it",
                    path, why)
    return None


def current_umask() -> int:
    """This process's umask (read from /proc where possible: setting it is process-wide)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


__all__ = ["UnsafePathError", "create_private", "current_umask", "ensure_private_file",
           "private_dir", "read_trusted"]
