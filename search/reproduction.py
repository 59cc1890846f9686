"""Rebuild a trial, fold or selection run from what it recorded and compare the numbers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from search.backend import deterministic
from search.data.dataset import Dataset
from search.data.foldarrays import fold_arrays
from search.engines.base import FoldResult, Member
from search.engines.pack.engine import replay
from search.engines.sequential import sequential_engine
from search.errors import DataError, InputError
from search.metrics import scores
from search.params import TrialParams
from search.prepare import Prepared, prepare
from search.selection.evaluation import test_output
from search.selection.refit import Final, refit_params
from search.space.file import parse_space
from search.study import DEFAULT_HOME
from search.tracking import ROLE, default_tracking_uri
from search.tracking.records import RunReader


@dataclass
class Reproduction:
    """Recorded and reproduced values side by side; `equal` only when all are identical."""

    run_id: str
    role: str
    rows: list[tuple[str, float, float]] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return bool(self.rows) and all(a == b for _, a, b in self.rows)

    def __str__(self) -> str:
        lines = [
            f"{self.role} run {self.run_id}:",
            f"  {'metric':<28} {'recorded':>22} {'reproduced':>22}",
        ]
        for name, rec, rep in self.rows:
            mark = "" if rec == rep else "   <- differs"
            lines.append(f"  {name:<28} {rec!r:>22} {rep!r:>22}{mark}")
        lines.append("identical" if self.equal else "NOT identical")
        return "\n".join(lines)


def reproduce(
    run_id: str, *, tracking_uri: str | None = None, home: str | Path = DEFAULT_HOME
) -> Reproduction:
    """Retrain what a run recorded, with its parameters and seeds, and compare its metrics."""
    runs = RunReader(tracking_uri or default_tracking_uri(Path(home)))
    run = runs.run(run_id)
    role = _reproducible(run)
    source = runs.run(run.data.tags["mlflow.parentRunId"]) if role == "fold" else run
    params = TrialParams.read(json.loads(runs.text(source.info.run_id, "params.json")))
    prep = _prepared(runs, run, source)
    seed = int(source.data.tags["search.seed"])
    deterministic()
    keras.utils.set_random_seed(seed)
    out = Reproduction(run_id, role)
    if role == "selection":
        _selection(out, runs, run, prep, params, seed)
        return out
    fold_runs = [run] if role == "fold" else runs.folds(run.info.run_id)
    indices = sorted(int(r.data.tags["search.fold"]) for r in fold_runs)
    if source.data.tags.get("search.engine") == "pack":
        record = json.loads(runs.text(source.info.run_id, "pack.json"))
        trained = _replay(record, prep, int(source.data.tags["search.trial"]))
    else:
        trained = _sequential(prep, params, seed, indices)
    _compare_folds(out, fold_runs, trained, prep.space.objective.metric, run)
    return out


def _reproducible(run: Any) -> str:
    """The run's role, when it is a finished trial, fold or selection run."""
    run_id, role = run.info.run_id, run.data.tags.get(ROLE)
    if role not in ("trial", "fold", "selection"):
        what = "a study run" if role == "study" else "not a run made by this service"
        raise InputError(f"run {run_id}: {what}; reproduce a trial, fold or selection run")
    if run.data.tags.get("search.state") == "PRUNED":
        raise InputError(
            f"run {run_id} is a pruned trial or fold (stopped early on purpose, so it has "
            "no final scores); reproduce a complete trial or one of its finished folds"
        )
    if run.info.status != "FINISHED":
        raise InputError(
            f"run {run_id} ended {run.info.status} ({run.data.tags.get('search.state', '')}"
            "); only finished runs can be reproduced in full"
        )
    return str(role)


def _prepared(runs: RunReader, run: Any, source: Any) -> Prepared:
    """The run's space, checked against today's data: refused when the data changed."""
    space = parse_space(
        runs.text(source.info.run_id, "space.yaml"),
        file=f"run {source.info.run_id}: space.yaml",
        origin=source.data.tags.get("search.space_dir"),
    )
    prep = prepare(space)
    recorded = run.data.tags.get("search.data_fingerprint")
    if recorded != prep.data.fingerprint:
        raise DataError(
            f"run {run.info.run_id}: the data no longer matches the run's (fingerprint "
            f"{recorded} recorded, {prep.data.fingerprint} now); refusing to "
            "reproduce on other data"
        )
    return prep


def _compare_folds(
    out: Reproduction,
    fold_runs: list[Any],
    trained: dict[int, FoldResult],
    metric: str,
    run: Any,
) -> None:
    """Each fold's recorded and reproduced scores and best epoch; a trial's mean too."""
    fold_scores = []
    for fold_run in sorted(fold_runs, key=lambda r: int(r.data.tags["search.fold"])):
        index = int(fold_run.data.tags["search.fold"])
        res = trained[index]
        fold_scores.append(res.scores[metric])
        for name, value in sorted(res.scores.items()):
            out.rows.append(
                (f"fold {index} val_{name}", fold_run.data.metrics[f"val_{name}"], value)
            )
        out.rows.append(
            (f"fold {index} best_epoch", fold_run.data.metrics["best_epoch"], float(res.best_epoch))
        )
    if out.role == "trial":
        out.rows.append(("trial score", run.data.metrics["score"], float(np.mean(fold_scores))))


def _sequential(
    prep: Prepared, params: TrialParams, seed: int, indices: list[int]
) -> dict[int, FoldResult]:
    """The trial's folds trained again by the sequential engine, as the search did."""
    folds = {f.index: f for f in prep.folds}
    members = [
        Member(
            -1,
            i,
            params,
            seed + i,
            fold_arrays(prep.data, prep.split.train, folds[i], params.max_tokens),
        )
        for i in indices
    ]
    out = {}
    for trained in sequential_engine(prep.space).train(members, prep.data):
        if trained.result is None:
            raise InputError(f"fold {trained.member.fold} failed again: {trained.error}")
        out[trained.member.fold] = trained.result
    return out


def _replay(record: dict[str, Any], prep: Prepared, trial: int) -> dict[int, FoldResult]:
    """A packed trial: its whole pack trained again, as the search trained it."""
    arrays = {f.index: fold_arrays(prep.data, prep.split.train, f) for f in prep.folds}
    out = {}
    for t in replay(record, arrays, prep.data):
        if t.member.trial == trial:
            if t.result is None:
                raise InputError(f"trial {trial}: fold {t.member.fold} failed again: {t.error}")
            out[t.member.fold] = t.result
    return out


def _selection(
    out: Reproduction,
    runs: RunReader,
    run: Any,
    prep: Prepared,
    params: TrialParams,
    seed: int,
) -> None:
    """Refit the selection's model (one trial, or each trial of its ensemble) and compare
    its test scores."""
    if run.data.params.get("ensemble"):  # an ensemble of trials: each refitted again
        members = json.loads(runs.text(run.info.run_id, "ensemble.json"))
        final = Final(None, [], 0)
        for m in members:
            part = refit_params(
                prep, TrialParams.read(m["params"]), epochs=int(m["epochs"]), seed=int(m["seed"])
            )
            final.pre = final.pre or part.pre
            final.nets += part.nets
            final.trials += [int(m["trial"])] * len(part.nets)
            final.weights += [float(m["weight"]) / len(part.nets)] * len(part.nets)
    else:
        epochs = int(run.data.metrics["refit_epochs"])
        final = refit_params(prep, params, epochs=epochs, seed=seed)
    output, y = test_output(prep, final)
    data: Dataset = prep.data
    threshold = float(run.data.params.get("threshold", 0.5))
    for name, value in sorted(scores(data.task, y, output, threshold).items()):
        key = f"test_{name}"
        if key in run.data.metrics:
            out.rows.append((key, run.data.metrics[key], value))
