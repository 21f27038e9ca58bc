"""Writing files whole or not at all, and saying why a write failed in words a user acts on."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path


def atomic_write_text(path: Path | str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename.

    A crash, a full disk or a kill mid-write leaves the old file (or none), never a partial one.
    If ``path`` is a symlink, the link itself is replaced by the new file: the write never
    follows it to wherever it points.

    Raises:
        OSError: when the folder is not writable or the disk is full (the temporary file is removed).
    """
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def os_error_text(exc: OSError) -> str:
    """``exc`` as a reason: "disk full" for ENOSPC/EDQUOT (whatever the platform's wording), else its text."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "disk full (no space left on the device)"
    return exc.strerror or str(exc)
