"""How often files are opened, by any process, as Linux's inotify reports (a real count, no mock)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import struct
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

IN_OPEN = 0x00000020
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then len bytes of name)


class Opens:
    """Watches files; ``count()`` is how often each was opened since the watch began."""

    def __init__(self, *paths: Path) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self._paths: dict[int, Path] = {}
        for path in paths:
            wd = self._libc.inotify_add_watch(self._fd, str(path).encode(), IN_OPEN)
            if wd < 0:
                raise OSError(ctypes.get_errno(), f"inotify_add_watch({path}) failed")
            self._paths[wd] = path
        self._seen: Counter[Path] = Counter()

    def count(self) -> dict[Path, int]:
        """Opens per watched file so far (every path, zero included)."""
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                break
            offset = 0
            while offset < len(data):
                wd, mask, _, length = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size + length
                if mask & IN_OPEN and wd in self._paths:
                    self._seen[self._paths[wd]] += 1
        return {path: self._seen[path] for path in self._paths.values()}

    def close(self) -> None:
        os.close(self._fd)


@contextlib.contextmanager
def watching(*paths: Path) -> Iterator[Opens]:
    opens = Opens(*paths)
    try:
        yield opens
    finally:
        opens.close()
