"""One meaning for a trial: `TrialParams` holds every knob's type and default once, its
record round-trips through the Optuna journal and MLflow, and no other module reads a
knob by its name."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import optuna
import pytest

from search.attrs import Trial
from search.data.dataset import load_dataset
from search.data.foldarrays import fold_arrays
from search.data.folds import make_folds
from search.data.split import split_test
from search.engines.base import Member
from search.engines.pack.carried import OPTIMIZERS as PACKED_OPTIMIZERS
from search.engines.pack.hyper import member_hyper
from search.engines.pack.shape import Limits, group_shape
from search.models.build import make_optimizer
from search.params import SCHEMA, TrialParams, default
from search.space.file import parse_space
from search.space.sampling import suggest
from search.space.schema import DataSpec, Params, ValidationSpec
from search.tracking.records import RunReader
from search.tracking.runs import Tracker

PACKAGE = Path(__file__).resolve().parents[1] / "search"
SPACE = """
data: {source: breast_cancer}
params:
  depth: {low: 1, high: 3}
  width: {low: 8, high: 64, per_layer: true}
  dropout: {low: 0.0, high: 0.5, per_layer: true}
  optimizer: {choices: [adam, adamw, sgd, rmsprop, nadam]}
  schedule: {choices: [constant, exponential]}
  class_weight: {choices: [none, balanced]}
  l2: {low: 1.0e-6, high: 1.0e-2, log: true, optional: true}
"""


def _sampled(n: int = 12) -> list[TrialParams]:
    space = parse_space(SPACE)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    return [suggest(space.params, study.ask()) for _ in range(n)]


def test_the_record_reads_back_as_the_same_trial_whatever_its_schema() -> None:
    for params in _sampled():
        record = params.record()
        assert record["schema"] == SCHEMA
        assert TrialParams.read(record) == params
        # a record written before the schema version existed: the same keys, schema 1
        old = {k: v for k, v in record.items() if k != "schema"}
        assert TrialParams.read(old) == params
        # the record lists what the trial set, never the defaults it left alone
        assert set(old) == set(params.set_knobs())
    with pytest.raises(ValueError, match="schema 99"):
        TrialParams.read({"schema": 99})


def test_the_record_survives_the_journal_and_mlflow(tmp_path: Path) -> None:
    sampled = _sampled(4)
    journal = optuna.storages.journal.JournalFileBackend(str(tmp_path / "j.journal"))
    storage = optuna.storages.JournalStorage(journal)
    study = optuna.create_study(storage=storage, study_name="s")
    for params in sampled:
        trial = study.ask()
        trial.set_user_attr(Trial.PARAMS, params.record())
        study.tell(trial, 0.0)
    again = optuna.load_study(
        study_name="s",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(tmp_path / "j.journal"))
        ),
    )
    assert [TrialParams.read(t.user_attrs[Trial.PARAMS]) for t in again.trials] == sampled

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri, "e", artifact_root=tmp_path / "a")
    run = tracker.study_run("s", run_id=None, tags={})
    tracker.log_json(run, sampled[0].record(), "params.json")
    tracker.end(run)
    tracker.flush()
    text = RunReader(uri).text(tracker.resolve(run), "params.json")
    assert TrialParams.read(json.loads(text)) == sampled[0]


def test_a_space_that_leaves_a_knob_out_gets_the_trials_own_default() -> None:
    space = Params()
    for name in Params.model_fields:
        value = getattr(space, name)
        if value is not None:
            assert value == default(name), name
    assert default("width") == TrialParams().widths[0]
    assert len(TrialParams().widths) == default("depth")


@pytest.mark.parametrize("optimizer", sorted(PACKED_OPTIMIZERS))
def test_both_engines_read_an_unset_knob_the_same(optimizer: str) -> None:
    """What the pack's program trains with equals what Keras' optimizer is built with,
    for every knob the space left unset (the weight decay once disagreed: 0.0 in the
    pack, 0.004 in Keras' AdamW)."""
    spec = DataSpec(source="breast_cancer")
    data = load_dataset(spec, base_dir=PACKAGE.parent)
    rows = split_test(data, spec).train
    fold = make_folds(ValidationSpec(folds=3), data.y[rows], classification=True, seed=1)[0]
    params = TrialParams(optimizer=optimizer, widths=(4,), depth=1)
    member = Member(0, 0, params, 1, fold_arrays(data, rows, fold))
    shape, _ = group_shape([member], data, Limits())
    packed = member_hyper(shape, member, 0)
    keras_opt = make_optimizer(params)
    keras_values: dict[str, Any] = {
        "weight_decay": getattr(keras_opt, "weight_decay", None) or 0.0,
        "momentum": getattr(keras_opt, "momentum", 0.0),
        "nesterov": float(getattr(keras_opt, "nesterov", False)),
        "learning_rate": float(keras_opt.learning_rate),
    }
    for key, value in keras_values.items():
        assert float(packed[key]) == pytest.approx(float(value)), key


KNOBS = set(TrialParams.model_fields) | {"width"}
ALLOWED = {PACKAGE / "params.py", *(PACKAGE / "space").glob("*.py")}


def _knob_reads(path: Path) -> list[str]:
    """`params["knob"]`, `x.params["knob"]` and `params.get("knob"...)` in one module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        receiver, key = None, None
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            receiver, key = node.value, node.slice.value
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            receiver, key = node.func.value, node.args[0].value
        if receiver is None or key not in KNOBS:
            continue
        text = ast.unparse(receiver)
        if text.endswith("params") and not text.endswith("data.params"):  # MLflow's own
            found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_module_reads_a_knob_by_its_name() -> None:
    reads = [r for p in sorted(PACKAGE.rglob("*.py")) if p not in ALLOWED for r in _knob_reads(p)]
    assert reads == []


def test_the_knob_scan_finds_a_string_keyed_read(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "def f(params, m):\n    return params.get('weight_decay', 0.0) + m.params['epochs']\n"
    )
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path
    try:
        assert len(_knob_reads(bad)) == 2
    finally:
        PACKAGE = saved
