"""The command line's arguments: the parser, and the numbers it takes checked before
anything runs (one line naming the flag, exit 2)."""

from __future__ import annotations

import argparse
import math
from typing import Any

from search.errors import InputError
from search.names import name_problem, shown_name


def _stores(parser: argparse.ArgumentParser, *, storage: bool = True) -> None:
    if storage:
        parser.add_argument(
            "--storage", help="Optuna storage URL or journal file (default: mlruns/optuna.journal)"
        )
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: mlruns/mlflow.db)")
    parser.add_argument("--home", default="mlruns", help="folder of the default stores")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show TensorFlow's own log lines"
    )


def _pool_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gpus", help="'all' or GPU ids like 0,1: one worker per GPU slot")
    parser.add_argument("--per-gpu", type=int, default=1, help="workers sharing each GPU")
    parser.add_argument(
        "--workers", type=int, help="number of workers (CPU workers without --gpus)"
    )
    parser.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="place the workers as Ray actors on this Ray cluster ('auto' for the local one)",
    )
    parser.add_argument(
        "--gpus-per-worker",
        type=float,
        default=0.0,
        help="with --ray: GPUs each worker requests (0.5 packs two per GPU)",
    )
    parser.add_argument("--gpu-memory-mb", type=int, help="memory budget of a shared GPU slot")
    parser.add_argument(
        "--recycle",
        type=int,
        default=50,
        help="start a fresh worker process after N trials (flat memory)",
    )
    parser.add_argument("--heartbeat", type=float, default=5.0, help="seconds between beats")
    parser.add_argument(
        "--grace",
        type=float,
        default=30.0,
        help="a trial without a heartbeat for this long is failed and retried",
    )


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="search", description="Hyperparameter search and model selection for Keras models."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _run(sub)
    for name, text in (
        ("select", "recheck the top trials, refit the best, test it once against a "
                   "baseline and register it"),
        ("report", "draw the study's figures and HTML page into MLflow"),
        ("best", "print the best trials of a study"),
    ):  # fmt: skip
        command = sub.add_parser(name, help=text)
        command.add_argument("study")
        if name == "best":
            command.add_argument("-n", type=int, default=10, help="how many trials (default 10)")
        _stores(command)
    submit = sub.add_parser("submit", help="queue a study on the shared storage")
    submit.add_argument("space")
    submit.add_argument("--trials", type=int, help="budget: complete or pruned trials")
    submit.add_argument("--priority", type=int, default=0, help="higher runs first")
    submit.add_argument("--study", help="study name (default: the file's)")
    _stores(submit)
    _stores(sub.add_parser("status", help="list queued, running and finished studies"))
    serve = sub.add_parser("serve", help="run workers until every queued study is done")
    _pool_args(serve)
    _stores(serve)
    rep = sub.add_parser("reproduce", help="retrain a trial, fold or selection run and compare")
    rep.add_argument("run_id")
    _stores(rep, storage=False)
    return parser


def _run(sub: Any) -> None:
    run = sub.add_parser(
        "run",
        help="run or resume the study a space file describes, then "
        "select, test and register its final model",
    )
    run.add_argument("space", help="a space file, e.g. spaces/default.yaml")
    run.add_argument(
        "--trials",
        type=int,
        help="the study's budget: complete or pruned trials in all, whichever run made them "
        "(default: the file's study.trials); running again finishes it",
    )
    run.add_argument("--timeout", type=float, help="stop starting trials after S seconds")
    run.add_argument("--study", help="study name (default: the file's study.name or its stem)")
    run.add_argument("--no-select", action="store_true", help="skip the final model selection")
    run.add_argument("--json", action="store_true", help="print a machine-readable summary")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    _pool_args(run)
    _stores(run)


_BOUNDS = {
    "trials": (1, True),
    "timeout": (0, False),
    "n": (1, True),
    "workers": (1, True),
    "per_gpu": (1, True),
    "recycle": (1, True),
    "heartbeat": (0, False),
    "grace": (0, False),
    "gpu_memory_mb": (1, True),
    "gpus_per_worker": (0, True),
}


def check_flags(args: argparse.Namespace) -> None:
    """Numbers and names on the command line: one line naming the flag, exit 2, nothing
    written."""
    for name, (low, inclusive) in _BOUNDS.items():
        value = getattr(args, name, None)
        if value is None:
            continue
        flag = "-n" if name == "n" else "--" + name.replace("_", "-")
        ok = value >= low if inclusive else value > low
        if not (math.isfinite(value) and ok):
            raise InputError(f"{flag} must be {'>=' if inclusive else '>'} {low}, got {value}")
    study = getattr(args, "study", None)
    problem = (
        name_problem(study) if args.command in ("run", "submit") and study is not None else None
    )
    if problem:  # a name that becomes a path part and an MLflow name
        raise InputError(f"--study {shown_name(str(study))}: {problem}")
    heartbeat, grace = getattr(args, "heartbeat", None), getattr(args, "grace", None)
    if heartbeat is not None and grace is not None and grace <= heartbeat:
        raise InputError(
            f"--grace ({grace:g} s) must be longer than --heartbeat ({heartbeat:g} s), or "
            "every running trial would look dead"
        )
