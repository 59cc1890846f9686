"""Model selection: recheck the top trials, refit the winner, test it once, register it."""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import optuna
from optuna.trial import FrozenTrial

from search.backend import deterministic
from search.bootstrap import bootstrap_scores, resample_counts
from search.champion import network_output, output_frame, save_parts
from search.data import Dataset, make_preprocessor
from search.errors import InputError, SearchFailed
from search.feed import fit_inputs
from search.fitting import fit_fold, own_fit_hypermodel
from search.folds import Fold, make_folds
from search.liveness import recover_stale
from search.metrics import scores
from search.model import build_state, keras_targets, make_model
from search.progress import Ticker
from search.space import METRICS, Space, ValidationSpec, parse_space
from search.study import (
    DEFAULT_HOME,
    Prepared,
    best_first,
    check_same_data,
    load_study,
    prepare,
)
from search.target import target_scale
from search.tracking import (
    STUDY,
    Tracker,
    default_tracking_uri,
    environment_tags,
    log_champion,
    register_champion,
)
from search.training import (
    FoldArrays,
    Member,
    collect_garbage,
    fold_arrays,
    make_engine,
    steps_per_execution,
    stop_rule,
    trial_seed,
)

REPORT = {
    "binary": ("accuracy", "roc_auc", "f1", "log_loss"),
    "multiclass": ("accuracy", "roc_auc", "f1", "log_loss"),
    "regression": ("mae", "rmse", "r2", "mse"),
}
RECHECK_SEED = 10_007  # model seeds of the recheck differ from the search's


@dataclass(frozen=True)
class Candidate:
    trial: int
    search_score: float
    recheck_score: float
    recheck_std: float


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:.4f} [{self.low:.4f}, {self.high:.4f}]"


@dataclass
class SelectionResult:
    """The final, once-only test of the chosen model; `str()` gives the table."""

    study_name: str
    metric: str
    chosen: Candidate
    candidates: list[Candidate]
    epochs: int
    test: dict[str, Interval]
    baseline: dict[str, Interval]
    difference: dict[str, Interval]
    beats_baseline: bool
    gap: float
    warnings: list[str] = field(default_factory=list)
    run_id: str = ""
    model_uri: str = ""
    version: str = ""
    promoted: bool = False
    registry: str = ""

    def __str__(self) -> str:
        lines = ["candidates (search score -> recheck on new folds and seeds):"]
        for c in self.candidates:
            mark = "*" if c.trial == self.chosen.trial else " "
            lines.append(
                f" {mark} trial {c.trial:>4}  {c.search_score:.4f} -> "
                f"{c.recheck_score:.4f} ± {c.recheck_std:.4f}"
            )
        lines.append(
            f"final test (trial {self.chosen.trial}, refit {self.epochs} epochs; "
            "95% bootstrap intervals):"
        )
        w = 2 + max(len(str(iv)) for iv in [*self.test.values(), *self.baseline.values()])
        lines.append(f"  {'metric':<10} {'model':<{w}} {'baseline':<{w}} model - baseline")
        for name in self.test:
            lines.append(
                f"  {name:<10} {self.test[name]!s:<{w}} {self.baseline[name]!s:<{w}} "
                f"{self.difference[name]}"
            )
        verdict = "beats" if self.beats_baseline else "does NOT clearly beat"
        lines.append(
            f"the model {verdict} the baseline on {self.metric}; validation-to-test "
            f"gap {self.gap:+.4f}"
        )
        lines += [f"warning: {w}" for w in self.warnings]
        if self.registry:
            lines.append(self.registry)
        return "\n".join(lines)


def study_space(study: optuna.Study) -> Space:
    text = study.user_attrs.get("space_text")
    if not text:
        raise InputError(
            f"study {study.study_name!r} was not made by this service "
            "(it has no space file recorded)"
        )
    return parse_space(
        text,
        file=study.user_attrs.get("space_file") or "<space>",
        origin=study.user_attrs.get("space_dir"),
    )


def select(
    study_name: str,
    *,
    storage: str | None = None,
    home: str | Path = DEFAULT_HOME,
    tracking_uri: str | None = None,
    say: Ticker | None = None,
) -> SelectionResult:
    """Choose, refit and test the final model of a study; log and register it in MLflow.

    `say` hears how the recheck and the refit go, a line every few seconds.
    """
    say = say or Ticker(None)
    home = Path(home)
    study = load_study(study_name, storage, home)
    uri = tracking_uri or default_tracking_uri(home)
    recover_stale(study._storage, tracking_uri=uri, home=home, studies=[study_name])
    space = study_space(study)
    prep = prepare(space)
    check_same_data(study, prep)
    deterministic()
    complete = best_first(study)
    if not complete:
        raise InputError(f"study {study_name!r} has no complete trial to select from")
    candidates = recheck(prep, complete[: space.selection.top_k], say)
    chosen = min(candidates, key=lambda c: c.recheck_score * _sign(space))
    trial = next(t for t in complete if t.number == chosen.trial)
    final = refit(prep, trial, say)
    say(
        f"test: trial {trial.number} and the baseline on the {len(prep.split.test)} test rows",
        force=True,
    )
    result = evaluate(prep, final, chosen, candidates, trial)
    say("logging the final model to MLflow and registering it ...", force=True)
    tracker = Tracker(uri, study_name, artifact_root=home / "artifacts")
    _log(tracker, study, prep, final, result, trial)
    mark = {"trial": trial.number, "run_id": result.run_id, "version": result.version}
    study.set_user_attr("selected", mark)  # what `search best` shows without opening MLflow
    if result.promoted:
        study.set_user_attr("champion", mark)
    return result


def _sign(space: Space) -> float:
    return 1.0 if space.direction == "minimize" else -1.0


def recheck_folds(prep: Prepared) -> list[Fold]:
    """New folds (another seed, holdout becomes k-fold) on the same training rows."""
    space, data = prep.space, prep.data
    spec = space.validation
    scheme = "kfold" if spec.scheme == "holdout" else spec.scheme
    check = ValidationSpec(
        scheme=scheme, folds=space.selection.recheck_folds, repeats=1, stratify=spec.stratify
    )
    groups = data.groups[prep.split.train] if data.groups is not None else None
    return make_folds(
        check,
        data.y[prep.split.train],
        classification=data.is_classifier,
        seed=space.data.seed + 1,
        groups=groups,
        where=space.path or "<space>",
    )


def recheck(
    prep: Prepared, trials: list[FrozenTrial], say: Ticker | None = None
) -> list[Candidate]:
    """Guard against the winner's curse: score the top trials again on fresh folds (all of
    them in one call of the space's engine: one pack, or one model at a time)."""
    folds = recheck_folds(prep)
    arrays = {f.index: fold_arrays(prep.data, prep.split.train, f) for f in folds}
    metric = prep.space.objective.metric
    members = [
        Member(t.number, f.index, t.user_attrs["params"], seed + f.index, arrays[f.index])
        for t in trials
        for seed in [trial_seed(prep.space.study.seed, t.number) + RECHECK_SEED]
        for f in folds
    ]
    values: dict[int, list[float]] = {t.number: [] for t in trials}
    say = say or Ticker(None)
    what = f"recheck: {len(trials)} candidates x {len(folds)} new folds"
    say(f"{what} (trials {', '.join(str(t.number) for t in trials)})", force=True)

    def tick(member: Member, epoch: int, logs: dict[str, float]) -> bool:
        say(f"{what}: trial {member.trial}, fold {member.fold + 1}, epoch {epoch + 1}")
        return False

    for i, done in enumerate(make_engine(prep.space).train(members, prep.data, tick), 1):
        if done.result is None:
            raise done.error or SearchFailed(f"recheck of trial {done.member.trial} failed")
        values[done.member.trial].append(done.result.scores[metric])
        say(f"{what}: {i} of {len(members)} fold models done")
    keras.backend.clear_session(free_memory=False)
    collect_garbage()
    return [
        Candidate(
            t.number,
            float(t.value or 0.0),
            float(np.mean(values[t.number])),
            float(np.std(values[t.number])),
        )
        for t in trials
    ]


@dataclass
class Final:
    pre: Any
    nets: list[Any]
    epochs: int


def refit(prep: Prepared, trial: FrozenTrial, say: Ticker | None = None) -> Final:
    """Refit on all training rows for the median best epoch (or keep the fold models)."""
    epochs = max(1, round(statistics.median(trial.user_attrs["best_epochs"])))
    seed = trial_seed(prep.space.study.seed, trial.number)
    say = say or Ticker(None)
    say(
        f"refit: trial {trial.number} on all {len(prep.split.train)} training rows, "
        f"{epochs} epochs",
        force=True,
    )
    return refit_params(prep, dict(trial.user_attrs["params"]), epochs=epochs, seed=seed, say=say)


def refit_params(
    prep: Prepared,
    params: dict[str, Any],
    *,
    epochs: int,
    seed: int,
    say: Ticker | None = None,
) -> Final:
    data, rows = prep.data, prep.split.train
    pre = make_preprocessor(data.encodings).fit(data.X.iloc[rows])
    x = pre.transform(data.X.iloc[rows]).astype(np.float32)
    spe = steps_per_execution(prep.space)
    if prep.space.selection.refit == "ensemble":
        nets = [_fold_net(prep, x, f, params, seed + f.index, spe) for f in prep.folds]
        return Final(pre, nets, epochs)
    keras.utils.set_random_seed(seed)
    net = make_model(
        params,
        n_features=x.shape[1],
        task=data.task,
        n_classes=data.n_classes,
        steps_per_execution=spe,
    )
    y = keras_targets(net, data.y[rows], data.n_classes)
    build_state(net, x, y)
    target = target_scale(params, y)
    if target is not None:  # standardized on all training rows (search.target)
        y = target.forward(y)
    tick = say or Ticker(None)
    run = {
        "epochs": epochs,
        "verbose": 0,
        "callbacks": [
            keras.callbacks.LambdaCallback(
                on_epoch_end=lambda e, logs: tick(f"refit: epoch {e + 1} of {epochs}")
            )
        ],
    }
    hypermodel = own_fit_hypermodel(params)
    if hypermodel is not None:  # a KerasTuner HyperModel trains with its own fit
        from search.hypermodel import fit_with

        fit_with(hypermodel, params, net, x=x, y=y, **run)
    else:
        net.fit(**fit_inputs(x, y, batch_size=int(params["batch_size"]), seed=seed), **run)
    if target is not None:
        target.fold_into(net)
    return Final(pre, [net], epochs)


def _fold_net(
    prep: Prepared, x: np.ndarray, fold: Fold, params: dict[str, Any], seed: int, spe: int
) -> Any:
    y = prep.data.y[prep.split.train]
    arrays = FoldArrays(x[fold.train], y[fold.train], x[fold.val], y[fold.val])
    net, _ = fit_fold(
        params, arrays, data=prep.data, seed=seed, spe=spe, rule=stop_rule(prep.space)
    )
    return net


def baseline_output(data: Dataset, train_y: np.ndarray, n: int) -> np.ndarray:
    """The common-sense baseline: class priors (majority class), or the training mean."""
    if data.task == "regression":
        return np.full((n, 1), float(np.mean(train_y)))
    prior = np.bincount(train_y, minlength=data.n_classes) / len(train_y)
    if data.task == "binary":
        return np.full((n, 1), prior[1])
    return np.tile(prior, (n, 1))


def test_output(prep: Prepared, final: Final) -> tuple[np.ndarray, np.ndarray]:
    """The final model's outputs on the test rows, and their targets."""
    test = prep.split.test
    x = final.pre.transform(prep.data.X.iloc[test]).astype(np.float32)
    return network_output(final.nets, x), prep.data.y[test]


def evaluate(
    prep: Prepared, final: Final, chosen: Candidate, candidates: list[Candidate], trial: FrozenTrial
) -> SelectionResult:
    """The one look at the test rows: model and baseline, with paired bootstrap intervals."""
    data, space = prep.data, prep.space
    test, train = prep.split.test, prep.split.train
    model_out, y = test_output(prep, final)
    base_out = baseline_output(data, data.y[train], len(test))
    names = list(dict.fromkeys([*REPORT[data.task], _named(space.objective.metric, data.task)]))
    model_s, base_s = scores(data.task, y, model_out), scores(data.task, y, base_out)
    boots = _bootstrap(
        data.task, y, model_out, base_out, names, space.selection.bootstrap, seed=space.data.seed
    )
    test_iv, base_iv, diff_iv = {}, {}, {}
    for name in names:
        m, b = boots[name]
        test_iv[name] = Interval(model_s[name], *_ci(m))
        base_iv[name] = Interval(base_s[name], *_ci(b))
        diff_iv[name] = Interval(model_s[name] - base_s[name], *_ci(m - b))
    metric = _named(space.objective.metric, data.task)
    better_high = METRICS[metric] == "maximize"
    d = diff_iv[metric]
    beats = d.low > 0 if better_high else d.high < 0
    gap = test_iv[metric].value - float(trial.value or 0.0)
    warnings = []
    cv = float(trial.value or 0.0)
    worse = cv > test_iv[metric].high if better_high else cv < test_iv[metric].low
    if worse:
        warnings.append(
            f"the validation score {cv:.4f} lies outside the test interval "
            f"{test_iv[metric]}: the search overfitted its validation data"
        )
    if not beats:
        warnings.append("the model does not beat the baseline by more than the interval")
    return SelectionResult(
        study_name="",
        metric=metric,
        chosen=chosen,
        candidates=candidates,
        epochs=final.epochs,
        test=test_iv,
        baseline=base_iv,
        difference=diff_iv,
        beats_baseline=beats,
        gap=gap,
        warnings=warnings,
    )


def _named(metric: str, task: str) -> str:
    if metric == "loss":
        return "mse" if task == "regression" else "log_loss"
    return metric


def _bootstrap(
    task: str,
    y: np.ndarray,
    model_out: np.ndarray,
    base_out: np.ndarray,
    names: list[str],
    n: int,
    *,
    seed: int,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Model and baseline on the same `n` resamples of the test rows (paired)."""
    counts = resample_counts(len(y), n, seed)
    model_v = bootstrap_scores(task, y, model_out, counts)
    base_v = bootstrap_scores(task, y, base_out, counts)
    return {k: (model_v[k], base_v[k]) for k in names}


def _ci(values: np.ndarray) -> tuple[float, float]:
    lo, hi = np.nanpercentile(values, [2.5, 97.5])
    return float(lo), float(hi)


def _log(
    tracker: Tracker,
    study: optuna.Study,
    prep: Prepared,
    final: Final,
    result: SelectionResult,
    trial: FrozenTrial,
) -> None:
    result.study_name = study.study_name
    parent = study.user_attrs["mlflow_run_id"]
    seed = trial_seed(prep.space.study.seed, trial.number)
    run = tracker.child_run(
        parent,
        "selection",
        role="selection",
        tags={
            STUDY: study.study_name,
            "search.trial": str(trial.number),
            "search.seed": str(seed),
            "search.data_fingerprint": prep.data.fingerprint,
            "search.space_dir": str(prep.space.base_dir),
            **environment_tags(),
        },
    )
    result.run_id = run
    metrics: dict[str, float] = {
        "refit_epochs": final.epochs,
        "gap": result.gap,
        "beats_baseline": float(result.beats_baseline),
    }
    for name, iv in result.test.items():
        metrics |= {
            f"test_{name}": iv.value,
            f"test_{name}_low": iv.low,
            f"test_{name}_high": iv.high,
            f"baseline_{name}": result.baseline[name].value,
            f"diff_{name}_low": result.difference[name].low,
            f"diff_{name}_high": result.difference[name].high,
        }
    tracker.log(
        run,
        params={
            "trial": trial.number,
            "refit": prep.space.selection.refit,
            "refit_epochs": final.epochs,
            "top_k": prep.space.selection.top_k,
        },
        metrics=metrics,
    )
    tracker.log_text(run, str(result), "final_test.txt")
    tracker.log_json(run, [c.__dict__ for c in result.candidates], "candidates.json")
    tracker.log_json(run, trial.user_attrs["params"], "params.json")
    tracker.log_text(run, prep.space.ran_text, "space.yaml")
    if prep.space.selection.champion:
        _register(tracker, study, prep, final, result)
    tracker.end(run)
    tracker.flush()


def _register(
    tracker: Tracker, study: optuna.Study, prep: Prepared, final: Final, result: SelectionResult
) -> None:
    data = prep.data
    example = data.X.iloc[prep.split.train[:5]]
    with tempfile.TemporaryDirectory() as tmp:
        artifacts = save_parts(
            Path(tmp),
            pre=final.pre,
            nets=final.nets,
            task=data.task,
            classes=list(data.labels),
            columns=list(data.X.columns),
        )
        x = final.pre.transform(example).astype(np.float32)
        output = output_frame(data.task, list(data.labels), network_output(final.nets, x))
        result.model_uri = log_champion(
            tracker, result.run_id, artifacts=artifacts, example=example, output=output
        )
    metric = result.metric
    score = result.test[metric].value
    digest = prep.split.digest()
    higher = METRICS[metric] == "maximize"

    def is_better(current: dict[str, str]) -> tuple[bool, str]:
        if current.get("test_digest") != digest:
            return False, "it was tested on another test split, so they cannot be compared"
        old = float(current.get(f"test_{metric}", "nan"))
        better = score > old if higher else score < old
        return better, f"test {metric} {score:.4f} vs {old:.4f}"

    tags = {
        "test_digest": digest,
        f"test_{metric}": repr(score),
        "trial": str(result.chosen.trial),
        "data_fingerprint": data.fingerprint,
        "selection_run": result.run_id,
    }
    result.version, result.promoted, result.registry = register_champion(
        tracker, result.model_uri, study.study_name, tags=tags, is_better=is_better
    )
