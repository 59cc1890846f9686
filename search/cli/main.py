"""Command line: parse arguments, call the API, map errors to exit codes (2 input, 1 run)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from search import interrupt
from search.attrs import Study
from search.backend import quiet_libraries
from search.cli.args import check_flags, parser
from search.cli.pool import pool_json, queue_command, serve_pool
from search.errors import InputError, SearchError
from search.redact import mask_text

# MLflow 3's UI opens on its GenAI view unless the address asks for the training one
UI_URL = "http://127.0.0.1:5000/#/experiments/{id}/runs?workflowType=machine_learning"


def main(argv: Sequence[str] | None = None) -> int:
    interrupt.install()
    args = parser().parse_args(argv)
    try:
        from search.storage.journal import check_journal, journal_path
        from search.storage.stores import check_stores

        check_flags(args)
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
def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        return _run(args)
    if args.command in ("select", "report", "reproduce"):  # these load Keras
        _find_first(args)
        quiet_libraries(args.verbose)
    if args.command == "select":
        from search.progress import Ticker
        from search.selection.selector import select

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
        return queue_command(args)
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


def _run(args: argparse.Namespace) -> int:
    if not args.json:
        return _search(args, None)
    from search.quiet import stdout_for_data_only

    with stdout_for_data_only() as out:  # the JSON document alone, whatever libraries print
        return _search(args, out)


def _search(args: argparse.Namespace, json_out: TextIO | None) -> int:
    from search.prepare import prepare
    from search.space.file import load_space

    space = load_space(args.space)
    # Data errors are found before TensorFlow loads (a hypermodel's file needs Keras to load).
    prep = None if space.model.hypermodel else prepare(space)
    quiet = args.quiet or args.json
    if args.gpus or args.workers:  # the one-study shortcut of submit + serve
        return _pooled(args, space, prep, json_out)
    from search.progress import Waiting

    with Waiting(_first_line(space, prep), enabled=not quiet):  # seconds count as they load
        quiet_libraries(args.verbose)
        with interrupt.deferred():  # as in backend.start: no module left half imported
            from search.runner import run_search
            from search.summary import result_json

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


def _pooled(args: argparse.Namespace, space: Any, prep: Any, json_out: TextIO | None) -> int:
    """`run --workers N` / `--gpus`: submit the study, serve it, then select."""
    from search.pool.queue import Queue, submit

    queue = Queue.open(args.storage, args.home, args.tracking_uri)
    args.study = submit(prep or space, queue, trials=args.trials, study_name=args.study)
    interrupted = serve_pool(args)
    args.command = "status"
    queue_command(args)
    if interrupted:  # the budget is not done: no selection yet
        return 130
    selection = None
    if not args.no_select:
        quiet_libraries(args.verbose)
        selection = _select_and_report(args, args.study, args.trials or space.study.trials)
    if json_out is not None:
        print(pool_json(queue, args.study, selection), file=json_out)
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


def _select_and_report(args: argparse.Namespace, study: str, budget: int | None) -> Any:
    """The end of every search: the final model, its one test, the report; once per
    budget, however many processes ran the study (two runs of one study may pass their
    shared budget by a trial, which is no reason for a second champion)."""
    from search.report import study_report
    from search.selection.selector import select
    from search.study import best_first, load_study

    with _study_lock(args.home, study):  # two runs of one study: one selection
        loaded = load_study(study, args.storage, Path(args.home))
        done = sorted(t.number for t in best_first(loaded))
        selected = loaded.user_attrs.get(Study.SELECTED_ON)
        if selected == done or (
            budget is not None and loaded.user_attrs.get(Study.SELECTED_FOR_BUDGET) == budget
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
        loaded.set_user_attr(Study.SELECTED_ON, done)
        loaded.set_user_attr(Study.SELECTED_FOR_BUDGET, budget)
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


def run() -> None:
    """The `search` command: `main`, then its exit code. After a Ctrl-C the process ends
    without the interpreter's clean-up: a Ctrl-C inside TensorFlow's import leaves C++
    state half made, whose destructors can abort (SIGABRT) instead of exiting with 130.
    Every write of the command is done by then."""
    code = interrupt.ended(main)
    if code == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    run()
