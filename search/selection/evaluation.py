"""The one look at the test rows: the final model and the baseline on the same
resamples, paired intervals, and the table a selection prints."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from search.data.dataset import Dataset, shaped
from search.metrics import scores
from search.models.outputs import network_output
from search.names import METRICS
from search.prepare import Prepared
from search.selection.bootstrap import bootstrap_scores, resample_counts
from search.selection.intervals import Interval, bounds_of, interval
from search.selection.linear import Linear, fit_linear
from search.selection.refit import Final

_CLASSES = (
    "accuracy",
    "balanced_accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "pr_auc",
    "log_loss",
)
REPORT = {  # the final table's metrics, by task
    "binary": _CLASSES,
    "multiclass": _CLASSES,
    "regression": ("mae", "rmse", "r2", "mse"),
}


@dataclass(frozen=True)
class Candidate:
    trial: int
    search_score: float
    recheck_score: float
    recheck_std: float


@dataclass(frozen=True)
class SelectionResult:
    """The final, once-only test of the chosen model; `str()` gives the table. Made by
    `evaluate`; the selection run and the registered champion are added by `replace`."""

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
    ensemble: str = ""  # the ensemble of trials tried on out-of-fold outputs, and its verdict
    single: dict[str, Interval] = field(default_factory=dict)  # the chosen trial alone
    versus_single: dict[str, Interval] = field(default_factory=dict)  # ensemble - single
    threshold: float | None = None  # a tuned decision threshold (objective.threshold)
    linear_model: str = ""  # the regularized linear model beside the baseline, named
    linear: dict[str, Interval] = field(default_factory=dict)  # it, on the same test rows
    versus_linear: dict[str, Interval] = field(default_factory=dict)  # model - linear

    def __str__(self) -> str:
        lines = ["candidates (search score -> recheck on new folds and seeds):"]
        for c in self.candidates:
            mark = "*" if c.trial == self.chosen.trial else " "
            lines.append(
                f" {mark} trial {c.trial:>4}  {c.search_score:.4f} -> "
                f"{c.recheck_score:.4f} ± {c.recheck_std:.4f}"
            )
        what = f"trial {self.chosen.trial}"
        if self.single:  # an ensemble of trials is the model
            what += " in the ensemble below"
        lines.append(f"final test ({what}, refit {self.epochs} epochs; 95% bootstrap intervals):")
        n = max(len("metric"), *(len(name) for name in self.test))
        w = 2 + max(len(str(iv)) for iv in [*self.test.values(), *self.baseline.values()])
        lines.append(f"  {'metric':<{n}} {'model':<{w}} {'baseline':<{w}} model - baseline")
        for name in self.test:
            lines.append(
                f"  {name:<{n}} {self.test[name]!s:<{w}} {self.baseline[name]!s:<{w}} "
                f"{self.difference[name]}"
            )
        lines += self._linear_lines()
        lines += self._ensemble_lines()
        if self.threshold is not None:
            lines.append(
                f"decision threshold {self.threshold:.4f}: tuned for {self.metric} on the "
                "recheck's out-of-fold rows (the test rows took no part)"
            )
        verdict = "beats" if self.beats_baseline else "does NOT clearly beat"
        lines.append(
            f"the model {verdict} the baseline on {self.metric}; recheck-to-test "
            f"gap {self.gap:+.4f} (test - trial {self.chosen.trial}'s recheck score)"
        )
        if self.versus_linear:
            lines.append(self._linear_verdict())
        lines += [f"warning: {w}" for w in self.warnings]
        if self.registry:
            lines.append(self.registry)
        return "\n".join(lines)

    def _linear_lines(self) -> list[str]:
        if not self.linear:
            return []
        lines = [f"the same test rows and features, a {self.linear_model}:"]
        n = max(len("metric"), *(len(name) for name in self.linear))
        w = 2 + max(len(str(iv)) for iv in self.linear.values())
        lines.append(f"  {'metric':<{n}} {'linear':<{w}} model - linear")
        for name in self.linear:
            lines.append(f"  {name:<{n}} {self.linear[name]!s:<{w}} {self.versus_linear[name]}")
        return lines

    def _linear_verdict(self) -> str:
        d, higher = self.versus_linear[self.metric], METRICS[self.metric] == "maximize"
        better, worse = (d.low > 0, d.high < 0) if higher else (d.high < 0, d.low > 0)
        if better:
            return f"the model beats the linear model on {self.metric}"
        who = "the linear model beats the model" if worse else (
            "the model does NOT clearly beat the linear model"
        )  # fmt: skip
        return f"{who} on {self.metric} (model - linear {d}): the network does not pay for itself"

    def _ensemble_lines(self) -> list[str]:
        lines = [self.ensemble] if self.ensemble else []
        if self.single:
            n = max(len("metric"), *(len(name) for name in self.single))
            w = 2 + max(len(str(iv)) for iv in self.single.values())
            alone = f"trial {self.chosen.trial} alone"
            lines.append(f"  {'metric':<{n}} {alone:<{w}} ensemble - single")
            for name in self.single:
                single, diff = self.single[name], self.versus_single[name]
                lines.append(f"  {name:<{n}} {single!s:<{w}} {diff}")
        return lines


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
    x = shaped(prep.data, final.pre.transform(prep.data.X, test).astype(np.float32))
    return network_output(final.nets, x, final.weights), prep.data.y[test]


def gap_warning(recheck: float, test: Interval, higher_is_better: bool) -> str:
    """A warning when the recheck's score (the candidates' line, `-> recheck`) is better
    than the whole test interval: fresh folds could not undo the selection's optimism,
    else ""."""
    outside = recheck > test.high if higher_is_better else recheck < test.low
    if not outside:
        return ""
    return (
        f"the recheck score {recheck:.4f} lies outside the test interval {test}: the "
        "training rows promised more than the test rows gave"
    )


def evaluate(
    prep: Prepared,
    final: Final,
    chosen: Candidate,
    candidates: list[Candidate],
    *,
    study_name: str,
    ensemble: str = "",
    threshold: float | None = None,
) -> SelectionResult:
    """The one look at the test rows: model and baseline, with paired bootstrap intervals
    (and, for an ensemble, the chosen trial alone on the same rows)."""
    data, space = prep.data, prep.space
    test, train = prep.split.test, prep.split.refit_rows
    model_out, y = test_output(prep, final)
    base_out = baseline_output(data, data.y[train], len(test))
    names = list(dict.fromkeys([*REPORT[data.task], _named(space.objective.metric, data.task)]))
    n, seed = space.selection.bootstrap, space.data.seed
    test_iv, base_iv, diff_iv = paired_intervals(
        data.task, y, model_out, base_out, names, n, seed, (final.threshold, 0.5)
    )
    metric = _named(space.objective.metric, data.task)
    beats, warnings = _verdict(metric, chosen.recheck_score, test_iv, diff_iv)
    single: dict[str, Interval] = {}
    versus_single: dict[str, Interval] = {}
    if len(set(final.trials)) > 1:  # an ensemble: the chosen trial alone, on the same rows
        single_out, _ = test_output(prep, final.of(chosen.trial))
        _, single, versus_single = paired_intervals(
            data.task, y, model_out, single_out, names, n, seed, (final.threshold,) * 2
        )
    linear = linear_output(prep, final)
    _, linear_iv, versus_linear = paired_intervals(
        data.task, y, model_out, linear.output, names, n, seed, (final.threshold, 0.5)
    )
    return SelectionResult(
        study_name, metric, chosen, candidates, final.epochs, test_iv, base_iv, diff_iv,
        beats, gap=test_iv[metric].value - chosen.recheck_score, warnings=warnings,
        ensemble=ensemble, single=single, versus_single=versus_single, threshold=threshold,
        linear_model=linear.text(), linear=linear_iv, versus_linear=versus_linear,
    )  # fmt: skip


def linear_output(prep: Prepared, final: Final) -> Linear:
    """The regularized linear model on the final model's features of the training rows
    (its fitted preprocessing), and its outputs on the test rows."""
    data, train, test = prep.data, prep.split.refit_rows, prep.split.test
    x_train = final.pre.transform(data.X, train).astype(np.float32)
    x_test = final.pre.transform(data.X, test).astype(np.float32)
    return fit_linear(data.task, data.n_classes, x_train, data.y[train], x_test)


def _verdict(
    metric: str, recheck: float, test: dict[str, Interval], difference: dict[str, Interval]
) -> tuple[bool, list[str]]:
    """Whether the model beats the baseline beyond the interval, and the warnings (the
    gap read from the recheck's score, the number the candidates' line shows)."""
    better_high = METRICS[metric] == "maximize"
    d = difference[metric]
    beats = d.low > 0 if better_high else d.high < 0
    warnings = [w for w in [gap_warning(recheck, test[metric], better_high)] if w]
    if not beats:
        warnings.append("the model does not beat the baseline by more than the interval")
    return beats, warnings


def paired_intervals(
    task: str,
    y: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    names: list[str],
    n: int,
    seed: int,
    thresholds: tuple[float, float] = (0.5, 0.5),
) -> tuple[dict[str, Interval], dict[str, Interval], dict[str, Interval]]:
    """Two models' scores on the test rows (each at its decision threshold), and their
    difference a - b, each with a 95% interval from the same `n` resamples (paired)."""
    a_s, b_s = scores(task, y, a, thresholds[0]), scores(task, y, b, thresholds[1])
    counts = resample_counts(len(y), n, seed)
    a_v = bootstrap_scores(task, y, a, counts, thresholds[0])
    b_v = bootstrap_scores(task, y, b, counts, thresholds[1])
    boots = {k: (a_v[k], b_v[k]) for k in names}
    a_iv, b_iv, diff_iv = {}, {}, {}
    for name in names:
        va, vb = boots[name]
        a_iv[name] = interval(a_s[name], va, bounds_of(name))
        b_iv[name] = interval(b_s[name], vb, bounds_of(name))
        diff_iv[name] = interval(a_s[name] - b_s[name], va - vb, bounds_of(name, True))
    return a_iv, b_iv, diff_iv


def _named(metric: str, task: str) -> str:
    if metric == "loss":
        return "mse" if task == "regression" else "log_loss"
    return metric
