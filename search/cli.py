"""Command line: parse arguments, call the API, map errors to exit codes (2 input, 1 run)."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from search import interrupt
from search.errors import InputError, SearchError
from search.redact import mask_text

# MLflow 3's UI opens on its GenAI view unless the address asks for the training one
UI_URL = "http://127.0.0.1:5000/#/experiments/{id}/runs?workflowType=machine_learning"


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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="search", description="Hyperparameter search and model selection for Keras models."
    )
    sub = parser.add_subparsers(dest="command", required=True)
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
    select = sub.add_parser(
        "select",
        help="recheck the top trials, refit the best, test it "
        "once against a baseline and register it",
    )
    select.add_argument("study")
    _stores(select)
    rep_ = sub.add_parser("report", help="draw the study's figures and HTML page into MLflow")
    rep_.add_argument("study")
    _stores(rep_)
    best = sub.add_parser("best", help="print the best trials of a study")
    best.add_argument("study")
    best.add_argument("-n", type=int, default=10, help="how many trials (default 10)")
    _stores(best)
    submit = sub.add_parser("submit", help="queue a study on the shared storage")
    submit.add_argument("space")
    submit.add_argument("--trials", type=int, help="budget: complete or pruned trials")
    submit.add_argument("--priority", type=int, default=0, help="higher runs first")
    submit.add_argument("--study", help="study name (default: the file's)")
    _stores(submit)
    stat = sub.add_parser("status", help="list queued, running and finished studies")
    _stores(stat)
    serve = sub.add_parser("serve", help="run workers until every queued study is done")
    _pool_args(serve)
    _stores(serve)
    rep = sub.add_parser("reproduce", help="retrain a trial, fold or selection run and compare")
    rep.add_argument("run_id")
    _stores(rep, storage=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    interrupt.install()
    args = _parser().parse_args(argv)
    try:
        from search.journal import check_journal, journal_path
        from search.stores import check_stores

        _check_flags(args)
        check_stores(getattr(args, "storage", None), args.tracking_uri)
        if hasattr(args, "storage"):  # a torn or damaged journal: before anything else
            check_journal(journal_path(args.storage, Path(args.home)))
        return _dispatch(args)
    except InputError as exc:
        print(f"error: {mask_text(str(exc))}", file=sys.stderr)
        return 2
    except SearchError as exc:
        print(f"search failed: {mask_text(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume the study", file=sys.stderr)
        return 130
    except Exception:  # a defect: its traceback is for the bug report, without passwords
        print(mask_text(traceback.format_exc()), file=sys.stderr, end="")
        return 1


# flag -> (smallest value, whether the smallest is allowed); every number finite
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


def _check_flags(args: argparse.Namespace) -> None:
    """Numbers on the command line: one line naming the flag, exit 2, nothing written."""
    for name, (low, inclusive) in _BOUNDS.items():
        value = getattr(args, name, None)
        if value is None:
            continue
        flag = "-n" if name == "n" else "--" + name.replace("_", "-")
        ok = value >= low if inclusive else value > low
        if not (math.isfinite(value) and ok):
            raise InputError(f"{flag} must be {'>=' if inclusive else '>'} {low}, got {value}")
    heartbeat, grace = getattr(args, "heartbeat", None), getattr(args, "grace", None)
    if heartbeat is not None and grace is not None and grace <= heartbeat:
        raise InputError(
            f"--grace ({grace:g} s) must be longer than --heartbeat ({heartbeat:g} s), or "
            "every running trial would look dead"
        )


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        return _run(args)
    if args.command in ("select", "report", "reproduce"):  # these load Keras
        _find_first(args)
        _quiet_libraries(args.verbose)
    if args.command == "select":
        from search.progress import Ticker
        from search.selection import select

        print(
            select(
                args.study,
                storage=args.storage,
                home=args.home,
                tracking_uri=args.tracking_uri,
                say=Ticker(sys.stderr),
            )
        )
        return 0
    if args.command in ("submit", "status", "serve"):
        return _queue(args)
    if args.command == "report":
        from search.report import study_report

        report = study_report(
            args.study, storage=args.storage, home=args.home, tracking_uri=args.tracking_uri
        )
        print(
            f"report of {args.study!r}: {', '.join(report.figures)} logged to the study run "
            "(artifacts report/*.png, report/report.html)"
        )
        return 0
    if args.command == "best":
        from search.best import best_table

        print(best_table(args.study, storage=args.storage, home=args.home, n=args.n))
        return 0
    from search.reproduction import reproduce

    result = reproduce(args.run_id, tracking_uri=args.tracking_uri, home=args.home)
    print(result)
    return 0 if result.equal else 1


def _queue(args: argparse.Namespace) -> int:
    from search.queue import Queue, recover, status, status_table, submit

    if args.command == "submit":
        from search.space import load_space
        from search.study import prepare

        prep = prepare(load_space(args.space))  # before the queue's folder is made
        _quiet_libraries(args.verbose)
        queue = Queue.open(args.storage, args.home, args.tracking_uri)
        name = submit(
            prep, queue, trials=args.trials, priority=args.priority, study_name=args.study
        )
        print(f"queued study {name!r}; start workers with: search serve")
    else:
        queue = Queue.open(args.storage, args.home, args.tracking_uri)
        recover(queue, queue.storage())  # trials whose process died: failed, retried once
    interrupted = args.command == "serve" and _serve(args)
    print(status_table(status(queue)))
    return 130 if interrupted else 0


def _serve(args: argparse.Namespace) -> bool:
    """Run the worker pool until the queue is done; True when Ctrl-C stopped it."""
    from search.redact import mask_password
    from search.workers import plan_slots, serve

    if args.ray:
        from search.cluster import serve_ray

        ray_report = serve_ray(
            args.ray,
            workers=args.workers or 1,
            gpus_per_worker=args.gpus_per_worker,
            storage=args.storage,
            home=args.home,
            tracking_uri=args.tracking_uri,
            recycle=args.recycle,
        )
        print(f"Ray actors saw GPUs: {ray_report.devices}", file=sys.stderr)
        return False

    slots = plan_slots(args.gpus, per_gpu=args.per_gpu, workers=args.workers)
    where = mask_password(args.storage) if args.storage else "the journal file"
    print(
        f"{len(slots)} workers on {where}: "
        + ", ".join(f"GPU {s.gpu}" if s.gpu is not None else "CPU" for s in slots),
        file=sys.stderr,
    )
    report = serve(
        slots,
        storage=args.storage,
        home=args.home,
        tracking_uri=args.tracking_uri,
        recycle=args.recycle,
        heartbeat_s=args.heartbeat,
        grace_s=args.grace,
        gpu_memory_mb=args.gpu_memory_mb,
    )
    if report.interrupted:
        print(
            "interrupted: running trials ended as failed; `search serve` resumes", file=sys.stderr
        )
    return report.interrupted


def _run(args: argparse.Namespace) -> int:
    if not args.json:
        return _search(args, None)
    from search.quiet import stdout_for_data_only

    with stdout_for_data_only() as out:  # the JSON document alone, whatever libraries print
        return _search(args, out)


def _search(args: argparse.Namespace, json_out: TextIO | None) -> int:
    from search.space import load_space
    from search.study import prepare

    space = load_space(args.space)
    # Data errors are found before TensorFlow loads (a hypermodel's file needs Keras to load).
    prep = None if space.model.hypermodel else prepare(space)
    quiet = args.quiet or args.json
    if args.gpus or args.workers:  # the one-study shortcut of submit + serve
        from search.queue import Queue, submit

        queue = Queue.open(args.storage, args.home, args.tracking_uri)
        args.study = submit(prep or space, queue, trials=args.trials, study_name=args.study)
        interrupted = _serve(args)
        args.command = "status"
        _queue(args)
        if interrupted:  # the budget is not done: no selection yet
            return 130
        selection = None
        if not args.no_select:
            _quiet_libraries(args.verbose)
            selection = _select_and_report(args, args.study, args.trials or space.study.trials)
        if json_out is not None:
            print(_pool_json(queue, args.study, selection), file=json_out)
        return 0
    from search.progress import Waiting

    with Waiting(_first_line(space, prep), enabled=not quiet):  # seconds count as they load
        _quiet_libraries(args.verbose)
        from search.runner import result_json, run_search

    interrupt.check()  # a Ctrl-C while the libraries loaded

    result = run_search(
        prep or space,
        n_trials=args.trials,
        timeout=args.timeout,
        study_name=args.study,
        storage=args.storage,
        tracking_uri=args.tracking_uri,
        home=args.home,
        progress=not (args.quiet or args.json),
    )
    if not args.json:
        print(result, flush=True)
    selection = None
    if not args.no_select and result.best_value is not None:
        selection = _select_and_report(args, result.study_name, args.trials or space.study.trials)
    if json_out is not None:
        print(result_json(result, selection), file=json_out)
        return 0
    print(f"MLflow: experiment {result.experiment_id}, study run {result.parent_run_id}")
    print(f"open the UI: make ui, then {UI_URL.format(id=result.experiment_id)}")
    return 0


def _first_line(space: Any, prep: Any) -> str:
    """Said at once, before the libraries take their seconds to load."""
    name = space.study.name or space.name
    if prep is None:
        return f"study {name!r}: loading Keras and the hypermodel {space.model.hypermodel} ..."
    data, folds = prep.data, len(prep.folds)
    scheme = "holdout" if folds == 1 else f"{space.validation.scheme}, {folds} folds"
    return (
        f"study {name!r}: {data.name}, {len(prep.split.train)} training rows "
        f"({len(prep.split.test)} held out for the final test), {data.X.shape[1]} columns, "
        f"{data.task}, {scheme}; loading TensorFlow and Keras ..."
    )


def _pool_json(queue: Any, study: str, selection: Any) -> str:
    """`search run --workers N --json`: the study's counts and best, and its selection."""
    import dataclasses
    import json

    from search.queue import status

    row = next(r for r in status(queue) if r.name == study)
    out = {
        "study_name": study,
        "budget": row.budget,
        "counts": {
            "complete": row.complete,
            "pruned": row.pruned,
            "fail": row.failed,
            "running": row.running,
        },
        "best_value": row.best,
        "storage": mask_text(queue.storage_url or "journal file (default)"),
        "tracking_uri": mask_text(queue.tracking_uri),
    }
    if selection is not None:
        out["selection"] = dataclasses.asdict(selection)
    return json.dumps(out, indent=2, default=str)


def _select_and_report(args: argparse.Namespace, study: str, budget: int | None) -> Any:
    """The end of every search: the final model, its one test, the report; once per
    budget, however many processes ran the study (two runs of one study may pass their
    shared budget by a trial, which is no reason for a second champion)."""
    from search.report import study_report
    from search.selection import select
    from search.study import best_first, load_study

    with _study_lock(args.home, study):  # two runs of one study: one selection
        loaded = load_study(study, args.storage, Path(args.home))
        done = sorted(t.number for t in best_first(loaded))
        selected = loaded.user_attrs.get("selected_on")
        if selected == done or (
            budget is not None and loaded.user_attrs.get("selected_for_budget") == budget
        ):
            print(
                f"study {study!r} was already selected for this budget ({len(done)} trials); "
                f"`search select {study}` selects again",
                file=sys.stderr,
            )
            return None
        if not (args.quiet or args.json):
            print("\nselecting the final model: recheck, refit, one test ...", file=sys.stderr)
        from search.progress import Ticker

        quiet = args.quiet or args.json
        selection = select(
            study,
            storage=args.storage,
            home=args.home,
            tracking_uri=args.tracking_uri,
            say=Ticker(None if quiet else sys.stderr),
        )
        loaded.set_user_attr("selected_on", done)
        loaded.set_user_attr("selected_for_budget", budget)
    if not quiet:
        print("drawing the study report ...", file=sys.stderr, flush=True)
    study_report(study, storage=args.storage, home=args.home, tracking_uri=args.tracking_uri)
    if not args.json:
        print(f"\n{selection}")
    return selection


@contextlib.contextmanager
def _study_lock(home: str, study: str) -> Iterator[None]:
    """One process at a time for this study's selection, on this machine."""
    import fcntl

    Path(home).mkdir(parents=True, exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in study)
    with open(Path(home) / f".select-{safe}.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _find_first(args: argparse.Namespace) -> None:
    """The study or run a command reads, looked up before Keras loads and before any store
    is opened: one that is not there is bad input that writes nothing (no store, no cache)."""
    if args.command != "reproduce":
        from search.study import load_study

        load_study(args.study, args.storage, Path(args.home))
        return
    from search.tracking import default_tracking_uri

    uri = args.tracking_uri or default_tracking_uri(Path(args.home))
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        raise InputError(f"run {args.run_id!r} not found: there is no MLflow store at {uri}")
    from search.tracking.records import RunReader

    RunReader(uri).run(args.run_id)


def _quiet_libraries(verbose: bool) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "3")
    # MLflow sets its loggers' level from this when it is first imported, here or in a
    # search's tracking process: importing it now only to quiet it would cost 1 s
    # before the first trial.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MPLBACKEND", "Agg")  # the report's figures: files, not windows
    import logging

    import optuna

    from search import backend

    backend.start(verbose)
    interrupt.check()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def run() -> None:
    """The `search` command: `main`, then its exit code. After a Ctrl-C the process ends
    without the interpreter's clean-up: a Ctrl-C inside TensorFlow's import leaves C++
    state half made, whose destructors can abort (SIGABRT) instead of exiting with 130.
    Every write of the command is done by then."""
    code = main()
    if code == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    run()
