"""Read a secret from a file (a target's api_key_file, an alert sink's url_file, secret_file, routing_key_file):
a regular file of at most 64 KiB, or an error saying what the path is instead; what it holds is never shown.

A named pipe (FIFO) was read waiting for a writer for good (check-config, `run` and a reload hung), a device
(/dev/zero) until memory ran out, and a large file (a log, a dump named by mistake) was read whole and sent as the
key. The file is opened without blocking and checked on its open descriptor before a byte is read."""

from __future__ import annotations

import os
import stat

MAX_BYTES = 64 * 1024  # a key, a token or a webhook URL is far shorter


class NotASecretFile(Exception):
    """The path is no regular file of at most MAX_BYTES; the message says what it is ("is a folder, not a file")."""


def read_secret_file(path: str) -> str:
    """Return the text of the secret file at `path`. Raises OSError as open() does, ValueError for a NUL in the
    path, UnicodeDecodeError for bytes that are not UTF-8, NotASecretFile for what no secret file is."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)  # a FIFO opens without a writer
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotASecretFile(f"is {_kind(mode)}, not a file")
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_BYTES:  # read up to one byte past the limit: a file may grow after its size was read
            chunk = os.read(fd, MAX_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > MAX_BYTES:
        whole = _size(path)
        raise NotASecretFile(f"is larger than 64 KiB{f' ({whole:,} bytes)' if whole else ''}: a key file holds one key "
                             "(what it holds is not shown)")
    return b"".join(chunks).decode("utf-8")


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "no regular file"


def _size(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None
