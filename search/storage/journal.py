"""Optuna's journal file, checked before it is opened: a torn tail is cut, damage refused.

A crash or a full disk in the middle of a write leaves the journal's last record cut short.
Optuna then skips it, appends after it, and every later read fails on the merged line. So
before the storage is opened, under the journal's own write lock: a last record without its
line end is backed up and cut off (one warning names the file and what was dropped); a
record that does not parse anywhere else is an error naming the file and the line, and
nothing is appended.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

from search import interrupt
from search.errors import InputError

log = logging.getLogger(__name__)


class JournalDamaged(InputError):
    """A record in the middle of the journal does not parse: restore it from a backup."""


def open_journal(path: Path) -> JournalFileBackend:
    """Optuna's journal backend on `path`, after `check_journal`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    check_journal(path)
    return _Journal(str(path))


class _Journal(JournalFileBackend):  # type: ignore[misc]
    """Optuna's journal whose writes Ctrl-C cannot cut in the middle of its file lock."""

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        with interrupt.deferred():
            super().append_logs(logs)


SUFFIXES = (".journal", ".log", ".jsonl")


def journal_path(storage: str | None, home: Path) -> Path | None:
    """The journal file a storage argument names (the default one under `home`); None for
    a database URL."""
    if storage is None:
        return home / "optuna.journal"
    return Path(storage) if storage.endswith(SUFFIXES) and "://" not in storage else None


def check_journal(path: Path | None) -> None:
    """`repair_tail` and `check_records` on an existing journal; nothing when it is absent."""
    if path is not None and path.exists() and path.stat().st_size:
        lock = JournalFileSymlinkLock(str(path))
        with interrupt.deferred():  # Ctrl-C cannot cut the lock's release in the middle
            lock.acquire()  # the lock Optuna's writers hold: no write is half done while we read
            try:
                repair_tail(path)
                check_records(path)
            finally:
                lock.release()


def repair_tail(path: Path) -> int:
    """Cut a last record that lacks its line end; back the file up first. Bytes dropped."""
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return 0
    keep = data.rfind(b"\n") + 1
    backup = path.with_name(f"{path.name}.torn-{time.strftime('%Y%m%dT%H%M%S')}")
    shutil.copy2(path, backup)
    with path.open("r+b") as f:
        f.truncate(keep)
    line = data[:keep].count(b"\n") + 1
    log.warning(
        "warning: %s: its last record (line %d, %d bytes) was cut short by a crash or a full "
        "disk; dropped it (the file as it was is kept in %s)",
        path,
        line,
        len(data) - keep,
        backup.name,
    )
    return len(data) - keep


def check_records(path: Path) -> None:
    """Raise JournalDamaged naming the first line that is not a JSON record."""
    with path.open("rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not isinstance(record, dict):
                raise JournalDamaged(
                    f"{path}:{number}: the Optuna journal is damaged here (not a record: "
                    f"{line[:60]!r}); restore it from a backup or move it away to start over"
                )
