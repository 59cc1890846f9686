"""The longest silence of `search run`: seconds between two things it writes (a line, or a
redraw of its progress bar), from the start of the command to its end.

    python bench/gaps.py [SPACE] [--home DIR]
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("space", nargs="?", default=str(ROOT / "spaces" / "default.yaml"))
    parser.add_argument("--home")
    args = parser.parse_args()
    home = args.home or tempfile.mkdtemp(prefix="gaps-")
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "search.cli.main", "run", args.space, "--home", home],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    assert proc.stderr is not None
    events: list[tuple[float, str]] = []
    buffer = b""
    while chunk := os.read(proc.stderr.fileno(), 4096):
        now = time.monotonic() - started
        buffer += chunk
        parts = buffer.replace(b"\r", b"\n").split(b"\n")
        buffer = parts.pop()
        events += [(now, p.decode(errors="replace").strip()[:70]) for p in parts if p.strip()]
    proc.wait()
    end = time.monotonic() - started
    times = [0.0, *(t for t, _ in events), end]
    gaps = sorted(
        (
            (b - a, a, next((w for t, w in events if t == b), "(end)"))
            for a, b in itertools.pairwise(times)
        ),
        reverse=True,
    )
    print(
        f"`search run {Path(args.space).name}`: {end:.0f} s, exit {proc.returncode}; "
        f"first output after {times[1]:.1f} s; the longest silences:"
    )
    for gap, at, what in gaps[:5]:
        print(f"- {gap:.1f} s from {at:.1f} s, ended by: {what}")


if __name__ == "__main__":
    main()
