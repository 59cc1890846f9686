"""Space files: every bad input gets one message naming file, key and line."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import optuna
import pytest

from search.errors import SpaceError
from search.runner import run_search
from search.selection.selector import select
from search.space.file import load_space, parse_space
from search.space.sampling import center, suggest
from tests.conftest import ROOT, run_cli
from tests.course import write_course_cache

BASE = "data:\n  source: iris\n"

BAD = [
    ("data: [iris\n", "not valid YAML", None),
    ("- a\n- b\n", "must be a mapping", None),
    (
        BASE + "params:\n  dropuot: 0.1\n",
        "unknown key `dropuot`; did you mean `dropout`",
        "params.dropuot",
    ),
    (BASE + "studdy: {}\n", "did you mean `study`", "studdy"),
    (
        BASE + "params:\n  learning_rate: {low: 0.1, high: 0.01}\n",
        "`low <= high` must hold",
        "params.learning_rate",
    ),
    (
        BASE + "params:\n  l2: {low: 0, high: 0.1, log: true}\n",
        "log range needs low > 0",
        "params.l2",
    ),
    (
        BASE + "params:\n  dropout: {low: 0.1, high: 1.0}\n",
        r"dropout must lie in \[0, 1\)",
        "params.dropout",
    ),
    (BASE + "params:\n  dropout: 1.5\n", r"dropout must lie in \[0, 1\)", "params.dropout"),
    (BASE + "params:\n  l1: -0.1\n", "l1 must be >= 0", "params.l1"),
    (BASE + "params:\n  l2: {choices: [0.0, -1.0]}\n", "l2 must be >= 0", "params.l2"),
    (BASE + "params:\n  optimizer: {choices: []}\n", "empty choice", "params.optimizer.choices"),
    (
        BASE + "study:\n  sampler: tpee\n",
        "unknown value 'tpee'; did you mean `tpe`",
        "study.sampler",
    ),
    (BASE + "study:\n  pruner: medain\n", "did you mean `median`", "study.pruner"),
    (
        BASE + "params:\n  optimizer: {choices: [adam, adamm]}\n",
        "unknown optimizer 'adamm'",
        "params.optimizer",
    ),
    (
        BASE + "params:\n  activation: rellu\n",
        "unknown activation 'rellu'; did you mean `relu`",
        "params.activation",
    ),
    (BASE + "validation:\n  scheme: loo\n", "unknown value 'loo'", "validation.scheme"),
    (BASE + "validation:\n  folds: 1\n", "greater than or equal to 2", "validation.folds"),
    (BASE + "objective:\n  metric: acc\n", "unknown value 'acc'", "objective.metric"),
    (BASE + "params:\n  depth: {low: 1.5, high: 3}\n", "whole numbers", "params.depth"),
    (BASE + "params:\n  depth: 0\n", "depth must be >= 1", "params.depth"),
    (
        BASE + "params:\n  learning_rate: {low: 0.001, high: 0.1, per_layer: true}\n",
        "only allowed on `width`, `dropout`, `l1`, `l2`",  # per-layer dropout: issue 22
        "params.learning_rate",
    ),
    (
        BASE + "params:\n  learning_rate: {low: 0.001, high: 0.1, log: true, step: 0.01}\n",
        "both `log: true` and a step",
        "params.learning_rate",
    ),
    (
        BASE + "study:\n  sampler: grid\nparams:\n  dropout: {low: 0.0, high: 0.5}\n",
        "grid sampler needs",
        "params.dropout",
    ),
    (
        BASE + "validation:\n  scheme: group_kfold\n",
        "needs `data.group_column`",
        "data.group_column",
    ),
    ("study:\n  trials: 3\n", "this key is required", "data"),
]


@pytest.mark.parametrize(("text", "match", "key"), BAD)
def test_bad_space_names_file_and_key(text: str, match: str, key: str | None) -> None:
    with pytest.raises(SpaceError, match=match) as info:
        parse_space(text, file="spaces/bad.yaml")
    assert info.value.file == "spaces/bad.yaml"
    assert str(info.value).startswith("spaces/bad.yaml")
    assert info.value.key == key
    if key is not None and "required" not in match:  # the line of the offending key
        assert info.value.line is not None


def test_line_number_points_at_the_key() -> None:
    text = BASE + "params:\n  depth: 2\n  dropout: 3.0\n"
    with pytest.raises(SpaceError) as info:
        parse_space(text, file="x.yaml")
    assert info.value.line == 5
    assert "x.yaml:5: params.dropout" in str(info.value)


def test_missing_space_file(tmp_path: Path) -> None:
    with pytest.raises(SpaceError, match="no such space file"):
        load_space(tmp_path / "nope.yaml")


@pytest.mark.parametrize("path", sorted((ROOT / "spaces").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_spaces_are_valid(path: Path) -> None:
    space = load_space(path)
    assert space.name
    assert space.study.trials is not None and space.study.trials >= 1


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted((ROOT / "spaces").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_spaces_run_end_to_end(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each shipped space as written (its data, model, validation), for one trial of 2
    epochs and a small selection: a search, a champion, a test table. The course's sets
    come from small files in Keras' layouts in a temporary Keras cache."""
    write_course_cache(tmp_path / "keras" / "datasets")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    space = load_space(path)
    short = space.model_copy(
        update={
            "params": space.params.model_copy(update={"epochs": 2, "patience": 1}),
            "study": space.study.model_copy(update={"trials": 1, "timeout": None}),
            "selection": space.selection.model_copy(
                update={"top_k": 1, "recheck_folds": 2, "bootstrap": 100, "ensemble": False}
            ),
        }
    )
    result = run_search(short, home=tmp_path / "m", progress=False)
    assert result.counts["complete"] == 1, result
    assert result.best_params["epochs"] == 2
    final = select(result.study_name, home=tmp_path / "m")
    assert final.promoted and final.model_uri
    assert all(np.isfinite(iv.value) for iv in final.test.values())


def _trial(space_text: str, seed: int = 0) -> tuple[dict[str, object], optuna.trial.FrozenTrial]:
    space = parse_space(space_text)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    trial = study.ask()
    params = suggest(space.params, trial).record()
    study.tell(trial, 0.0)
    return params, study.trials[-1]


def test_per_layer_width_is_conditional_on_depth() -> None:
    text = (
        BASE + "params:\n  depth: {low: 1, high: 4}\n  width: {low: 8, high: 64, per_layer: true}\n"
    )
    for seed in range(6):
        params, frozen = _trial(text, seed)
        depth = params["depth"]
        assert isinstance(depth, int) and len(params["widths"]) == depth  # type: ignore[arg-type]
        assert {f"width_{i}" for i in range(depth)} <= set(frozen.params)
        assert f"width_{depth}" not in frozen.params


def test_optional_regularizer_can_be_switched_off() -> None:
    text = BASE + "params:\n  l1: {low: 1.0e-5, high: 1.0e-2, log: true, optional: true}\n"
    seen = {bool(_trial(text, seed)[0]["l1"]) for seed in range(12)}
    assert seen == {True, False}  # both on (a sampled value) and off (exactly 0)


def test_fixed_values_pass_through_and_irrelevant_ones_are_dropped() -> None:
    params, frozen = _trial(BASE + "params:\n  optimizer: sgd\n  momentum: 0.8\n  epochs: 7\n")
    assert params["optimizer"] == "sgd" and params["momentum"] == 0.8 and params["epochs"] == 7
    assert "weight_decay" not in params  # only AdamW/Lion use it
    assert frozen.params == {}  # nothing was sampled


CENTER = BASE + (
    "params:\n"
    "  depth: {low: 1, high: 3}\n"
    "  width: {low: 16, high: 256, log: true, per_layer: true}\n"
    "  dropout: {low: 0.0, high: 0.6, step: 0.2}\n"
    "  l2: {low: 1.0e-6, high: 1.0e-2, log: true, optional: true}\n"
    "  activation: {choices: [elu, relu]}\n"
    "  batch_size: {choices: [128, 16, 64, 32]}\n"
)


def test_center_is_the_middle_of_every_searched_parameter() -> None:
    space = parse_space(CENTER)
    study = optuna.create_study()
    study.enqueue_trial(center(space.params))
    params = suggest(space.params, study.ask()).record()
    assert params["depth"] == 2
    assert params["widths"] == [64, 64]  # geometric middle of 16..256, one per layer
    assert params["dropout"] == pytest.approx(0.2)  # the lower middle of 0, 0.2, 0.4, 0.6
    assert params["l2"] == pytest.approx(1e-4)  # optional: switched on
    assert params["activation"] == "elu"  # the first of non-numeric choices
    assert params["batch_size"] == 32  # the lower middle of sorted numeric choices
    assert params["learning_rate"] == 1e-3  # fixed values are not part of the center


def test_a_new_study_starts_at_the_center_once(tmp_path: Path) -> None:
    from search.prepare import prepare
    from search.study import open_study

    storage = optuna.storages.InMemoryStorage()
    prep = prepare(parse_space(CENTER))
    study = open_study(prep, storage, "s")
    first = study.ask()
    assert first.user_attrs == {"start": "center"}
    assert suggest(prep.space.params, first).widths == (64, 64)
    study.tell(first, 0.5)
    again = open_study(prep, storage, "s")  # resuming enqueues nothing
    assert again.ask().user_attrs == {}

    prep = prepare(parse_space(CENTER.replace("data:", "study: {start: random}\ndata:")))
    assert open_study(prep, optuna.storages.InMemoryStorage(), "r").ask().user_attrs == {}


COURSE = sorted(p for p in (ROOT / "spaces").glob("*.yaml") if "keras:" in p.read_text())


@pytest.mark.parametrize("path", COURSE, ids=lambda p: p.name)
def test_course_spaces_say_where_their_data_goes_when_it_is_missing(
    path: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "KERAS_HOME": str(tmp_path / "empty")}
    out = run_cli("run", str(path), "--home", str(tmp_path / "m"), env=env)
    assert out.returncode == 2, out.stderr[-2000:]
    (line,) = out.stderr.strip().splitlines()
    assert str(tmp_path / "empty" / "datasets") in line and "load_data()" in line, line
    assert not (tmp_path / "m").exists()


def test_every_course_data_set_has_a_shipped_space() -> None:
    sources = {load_space(p).data.source for p in COURSE}
    assert {f"keras:{n}" for n in ("mnist", "fashion_mnist", "imdb", "reuters")} <= sources
    assert "keras:boston_housing" in sources
