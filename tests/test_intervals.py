"""Every estimate the final table prints lies inside its own interval: the model, the
baseline, their difference (and the single trial and ensemble, the same function), for
every metric, any number of classes, rare and absent ones; and `--json` carries every
interval the table prints."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from search.metrics import scores
from search.selection.bootstrap import bootstrap_scores
from search.selection.evaluation import REPORT, Candidate, SelectionResult, paired_intervals
from search.selection.intervals import Interval, interval
from search.summary import result_json


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """A task, test labels, a model's and a baseline's outputs. Classes: 2 to 50, drawn
    from skewed shares so that some are rare (one row) and some absent from the rows."""
    task = draw(st.sampled_from(["binary", "multiclass", "regression"]))
    seed = draw(st.integers(0, 2**32 - 1))
    n = draw(st.integers(5, 250))
    rng = np.random.default_rng(seed)
    if task == "regression":
        y = rng.normal(size=n) * draw(st.floats(0.01, 100))
        noise = draw(st.floats(0.0, 3.0))
        model = (y + rng.normal(scale=noise * (np.std(y) + 1e-9), size=n)).reshape(-1, 1)
        return task, y, model, np.full((n, 1), float(rng.normal()))
    k = 2 if task == "binary" else draw(st.integers(3, 50))
    shares = rng.dirichlet(np.full(k, draw(st.floats(0.05, 3.0))))
    y = rng.choice(k, size=n, p=shares)
    skill = draw(st.floats(0.0, 4.0))
    logits = rng.normal(size=(n, k)) + skill * np.eye(k)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    prior = rng.dirichlet(np.ones(k))  # the training labels' shares, not the test rows'
    if task == "binary":
        return task, y, proba[:, 1:], np.full((n, 1), prior[1])
    return task, y, proba, np.tile(prior, (n, 1))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases(), threshold=st.sampled_from([0.5, 0.3, 0.8]))
def test_every_printed_estimate_lies_inside_its_interval(
    case: tuple[str, np.ndarray, np.ndarray, np.ndarray], threshold: float
) -> None:
    task, y, model, baseline = case
    names = list(REPORT[task])
    a, b, diff = paired_intervals(task, y, model, baseline, names, 200, 7, (threshold, 0.5))
    for table in (a, b, diff):
        assert set(table) == set(names)
        for name, iv in table.items():
            if np.isnan(iv.value):  # no estimate (a class without rows: no AUC), no interval
                assert np.isnan(iv.low) and np.isnan(iv.high), (name, iv)
                continue
            assert iv.low <= iv.value <= iv.high, (task, name, iv)


@settings(max_examples=60, deadline=None)
@given(case=cases())
def test_the_estimate_and_each_resample_are_one_definition(
    case: tuple[str, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    """A resample that draws every row once is the test rows: the bootstrap's value there
    is the printed estimate, for every metric (macro means over all the model's classes,
    0/0 counting 0, in both)."""
    task, y, model, _ = case
    once = np.ones((1, len(y)))
    fast = bootstrap_scores(task, y, model, once)
    slow = scores(task, y, model)
    for name, value in slow.items():
        if np.isnan(value):
            assert np.isnan(fast[name][0]), name
        else:
            assert fast[name][0] == pytest.approx(value, rel=1e-9, abs=1e-12), name


def test_a_biased_resampling_still_holds_the_estimate() -> None:
    # every resample below the estimate (the case the percentile interval misses)
    iv = interval(0.85, np.linspace(0.60, 0.82, 500), (0.0, 1.0))
    assert iv.low <= 0.85 <= iv.high
    assert iv.high - iv.low == pytest.approx(np.percentile(np.linspace(0.6, 0.82, 500), 97.5)
                                             - np.percentile(np.linspace(0.6, 0.82, 500), 2.5))  # fmt: skip
    # an unbiased resampling keeps the percentile interval
    rng = np.random.default_rng(0)
    values = rng.normal(0.5, 0.05, 4001)
    centred = interval(float(np.median(values)), values, (0.0, 1.0))
    assert (centred.low, centred.high) == pytest.approx(tuple(np.percentile(values, [2.5, 97.5])))
    # clipped to what the metric can take
    assert interval(1.0, np.array([0.9, 1.0, 1.0]), (0.0, 1.0)).high == 1.0


def test_a_46_class_macro_precision_lies_inside_its_interval() -> None:
    """The issue's case: 46 classes, several rare, macro precision."""
    rng = np.random.default_rng(46)
    shares = np.r_[np.full(6, 0.12), np.full(40, 0.28 / 40)]
    y = rng.choice(46, size=500, p=shares / shares.sum())
    logits = rng.normal(size=(500, 46)) + 3.0 * np.eye(46)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    prior = np.tile(np.bincount(y, minlength=46) / 500, (500, 1))
    a, _, _ = paired_intervals("multiclass", y, proba, prior, ["precision", "f1"], 1000, 0)
    for iv in a.values():
        assert iv.low <= iv.value <= iv.high


def _result(ensemble: bool) -> SelectionResult:
    rng = np.random.default_rng(1)

    def table() -> dict[str, Interval]:
        out = {}
        for name in REPORT["binary"]:
            v = float(rng.uniform(0.2, 0.8))
            out[name] = Interval(v, v - float(rng.uniform(0, 0.1)), v + float(rng.uniform(0, 0.1)))
        return out

    c = Candidate(3, 0.2, 0.21, 0.01)
    return SelectionResult(
        "s", "log_loss", c, [c], 10, table(), table(), table(), True, 0.01,
        single=table() if ensemble else {}, versus_single=table() if ensemble else {},
        linear=table(), versus_linear=table(),
    )  # fmt: skip


@pytest.mark.parametrize("ensemble", [False, True])
def test_json_selection_carries_every_interval_the_table_prints(ensemble: bool) -> None:
    result = _result(ensemble)
    printed = re.findall(r"(-?\d+\.\d{4}) \[(-?\d+\.\d{4}), (-?\d+\.\d{4})\]", str(result))
    selection = json.loads(result_json(_Search(), result))["selection"]
    found = {
        (f"{iv['value']:.4f}", f"{iv['low']:.4f}", f"{iv['high']:.4f}")
        for field in dataclasses.fields(SelectionResult)
        if isinstance(selection[field.name], dict)
        for iv in selection[field.name].values()
        if isinstance(iv, dict)
    }
    assert printed and set(printed) <= found


class _Search:
    """The least a SearchResult gives `result_json`."""

    def as_dict(self) -> dict[str, object]:
        return {"study_name": "s"}


@pytest.mark.parametrize(("folds", "spread"), [(1, False), (3, True)])
def test_a_holdout_trial_is_printed_without_a_spread(folds: int, spread: bool) -> None:
    """One validation part has no spread: no `± 0` on its trial line (k-fold: the folds')."""
    import io

    import optuna

    from search.attrs import Trial
    from search.progress import Progress

    study = optuna.create_study()
    study.optimize(lambda t: 0.25, n_trials=1)
    trial = study.trials[0]
    trial.user_attrs[Trial.SCORE_STD] = 0.0 if folds == 1 else 0.05
    out = io.StringIO()
    Progress(1, "log_loss", out, True, folds=folds)(study, trial)
    line = next(x for x in out.getvalue().splitlines() if "log_loss=0.2500" in x)
    assert ("±" in line) == spread, line
