"""Command line: parse arguments, call the API, map errors to exit codes (2 input, 1 run)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from search.errors import InputError, SearchError

UI_HINT = "make ui   # then open http://127.0.0.1:5000"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="search", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run or resume the study a space file describes")
    run.add_argument("space", help="a space file, e.g. spaces/default.yaml")
    run.add_argument("--trials", type=int, help="trials to add in this run (default: the file's)")
    run.add_argument("--timeout", type=float, help="stop starting trials after S seconds")
    run.add_argument("--study", help="study name (default: the file's study.name or its stem)")
    run.add_argument("--storage", help="Optuna storage URL or journal file (default: mlruns/)")
    run.add_argument("--tracking-uri", help="MLflow tracking URI (default: mlruns/mlflow.db)")
    run.add_argument("--home", default="mlruns", help="folder for the default stores")
    run.add_argument("--json", action="store_true", help="print a machine-readable summary")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    run.add_argument("-v", "--verbose", action="store_true",
                     help="show TensorFlow's own log lines and Keras' per-epoch output")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return _run(args)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SearchError as exc:
        print(f"search failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume the study", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    if args.trials is not None and args.trials < 1:
        raise InputError(f"--trials must be >= 1, got {args.trials}")
    if args.timeout is not None and args.timeout <= 0:
        raise InputError(f"--timeout must be > 0, got {args.timeout}")
    from search.space import load_space

    space = load_space(args.space)
    _quiet_libraries(args.verbose)
    from search.runner import result_json, run_search

    result = run_search(space, n_trials=args.trials, timeout=args.timeout,
                        study_name=args.study, storage=args.storage,
                        tracking_uri=args.tracking_uri, home=args.home,
                        progress=not (args.quiet or args.json))
    if args.json:
        print(result_json(result))
    else:
        print(result)
        print(f"MLflow: experiment {result.experiment_id}, study run {result.parent_run_id}")
        print(f"open the UI: {UI_HINT}")
    return 0


def _quiet_libraries(verbose: bool) -> None:
    import logging

    import mlflow  # noqa: F401  (configures its loggers on import; quiet them after)
    import optuna

    from search.quiet import import_tensorflow

    import_tensorflow(verbose)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


if __name__ == "__main__":
    sys.exit(main())
