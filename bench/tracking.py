"""Does MLflow's process of its own still pay? `make search` both ways, alternating.

What ships: a search writes to MLflow through `search.tracking.process.TrackingProcess`,
a child process that imports MLflow, opens the store and carries out the writes while the
trials train. The other way: the same writes from a thread of the search's own process
(`Tracker`, which the workers and the selection use). Each round runs the default space
(search, selection, final test, report: what `make search` runs) once each way, in a
fresh process and a fresh folder, and reports the wall time and the search's own time
(its "new trials in" line).

    python bench/tracking.py --rounds 3 > bench/tracking_now.md  (bench/tracking.md: the
    figures kept in bench/RESULTS.md, with what they mean)
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LAUNCH = """
import sys
from search import runner
from search.tracking.runs import Tracker

class Inline(Tracker):
    def close(self):
        self.flush()

if sys.argv.pop(1) == "thread":
    runner.TrackingProcess = lambda uri, name, *, artifact_root: Inline(
        uri, name, artifact_root=artifact_root
    )
from search.cli.main import run
sys.exit(run())
"""


def once(way: str, home: Path) -> tuple[float, float]:
    """Wall seconds of `search run spaces/default.yaml`, and its search's seconds."""
    command = [sys.executable, "-c", LAUNCH, way, "run", "spaces/default.yaml", "--home"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    started = time.perf_counter()
    done = subprocess.run(
        [*command, str(home)], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    found = re.search(r"new trials in (\d+)s", done.stdout + done.stderr)
    return wall, float(found.group(1)) if found else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    times: dict[str, list[tuple[float, float]]] = {"process": [], "thread": []}
    with tempfile.TemporaryDirectory() as folder:
        once("process", Path(folder) / "warm-up")  # compiled pack programs in the disk cache
        for i in range(args.rounds):
            for way in times:
                times[way].append(once(way, Path(folder) / f"{way}-{i}"))
    print("# MLflow's writes: a process of their own or a thread (bench/tracking.py)\n")
    print(f"`python bench/tracking.py --rounds {args.rounds}`\n")
    print("| writes from | `make search` wall s (each round) | mean | search s (each) | mean |")
    print("| --- | --- | ---: | --- | ---: |")
    for way, rows in times.items():
        walls, searches = [w for w, _ in rows], [s for _, s in rows]
        print(
            f"| {way} | {', '.join(f'{w:.1f}' for w in walls)} | {statistics.mean(walls):.1f} "
            f"| {', '.join(f'{s:.0f}' for s in searches)} | {statistics.mean(searches):.1f} |"
        )


if __name__ == "__main__":
    main()
