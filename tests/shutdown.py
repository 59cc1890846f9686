"""A Ctrl-C sent in the last stretch of a process's life, after its exit code is decided."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

SIGINT_BIT = 1 << (signal.SIGINT - 1)


def _caught(pid: int) -> bool | None:
    """Whether the process has a handler for SIGINT now (None once it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    mask = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(mask.split()[1], 16) & SIGINT_BIT)


def ctrl_c_once_handler_goes(proc: subprocess.Popen[str], timeout: float = 300) -> bool:
    """Watch the process's SIGINT disposition; once its handler, installed at start, is no
    longer there (the interpreter shutting down, or the program ignoring a late Ctrl-C),
    send the process group a Ctrl-C. True if it was sent to a live process."""
    seen = False
    deadline = time.time() + timeout
    while time.time() < deadline:
        caught = _caught(proc.pid)
        if caught is None or proc.poll() is not None:
            return False
        if caught:
            seen = True
        elif seen:
            os.killpg(proc.pid, signal.SIGINT)
            return True
        time.sleep(0.002)
    raise AssertionError("the process neither exited nor dropped its handler")
