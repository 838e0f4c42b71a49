"""A path that fails as a symbolic link leading nowhere (its target gone, a loop of links) is told as such, naming
the link and where it leads: errno's "No such file or directory" named a file that is there, as a link."""

from __future__ import annotations

import errno
import os
from pathlib import Path

_SAID = {errno.ENOENT: "does not exist", errno.ENOTDIR: "does not exist", errno.ELOOP: "is a loop of links"}


def link_said(path: Path, error: int | None) -> str | None:
    """"a symbolic link to TARGET, which does not exist" (or "is a loop of links") when `path` is a link that failed
    with `error`, else None."""
    try:
        if error in _SAID and path.is_symlink():
            return f"a symbolic link to {os.readlink(path)}, which {_SAID[error]}"
    except (OSError, ValueError):
        pass
    return None


def broken_link(path: Path) -> str | None:
    """"LINK is a symbolic link to TARGET, which does not exist" when `path`, or a folder on the way to it, is a link
    leading nowhere; None when it exists or is plainly missing."""
    parts = path.parts
    for i in range(1, len(parts) + 1):
        step = Path(*parts[:i])
        try:
            os.stat(step)
        except (OSError, ValueError) as e:
            said = link_said(step, getattr(e, "errno", None))
            return f"{step} is {said}" if said else None
    return None
