"""Bad input that once got past validation: each is one line naming the file, the key and
the line, exit code 2, and nothing written (issue 17's list, and each case's neighbours)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from search.errors import DataError, SpaceError
from search.prepare import prepare
from search.space.file import load_space, parse_space
from tests.conftest import run_cli

BASE = "data:\n  source: iris\n"

BAD = [
    # a key written twice: YAML keeps the last one silently
    (BASE + "params:\n  dropout: 0.1\n  dropout: 0.2\n", "written twice", "dropout", 5),
    (BASE + "study: {trials: 3, trials: 4}\n", "written twice", "trials", 3),
    (BASE + "data:\n  source: wine\n", "written twice", "data", 3),
    # a step that leaves only `low`
    (
        BASE + "params:\n  width: {low: 4, high: 8, step: 16}\n",
        "larger than the range",
        "params.width",
        4,
    ),
    (
        BASE + "params:\n  dropout: {low: 0.0, high: 0.2, step: 0.5}\n",
        "larger than the range",
        "params.dropout",
        4,
    ),
    # a value listed twice in a choice
    (BASE + "params:\n  width: {choices: [8, 16, 8]}\n", "listed twice", "params.width", 4),
    (
        BASE + "params:\n  activation: {choices: [relu, tanh, relu]}\n",
        "listed twice",
        "params.activation",
        4,
    ),
    # names Keras refuses: validated as Keras spells them
    (BASE + "params:\n  activation: ReLU\n", "did you mean `relu`", "params.activation", 4),
    (
        BASE + "params:\n  optimizer: {choices: [adam, SGD]}\n",
        "did you mean `sgd`",
        "params.optimizer",
        4,
    ),
    # NaN and infinity, in every kind of numeric field
    (BASE + "params:\n  learning_rate: .nan\n", "finite number", "params.learning_rate", 4),
    (
        BASE + "params:\n  dropout: {low: 0.0, high: .nan}\n",
        "finite number",
        "params.dropout.high",
        4,
    ),
    (BASE + "params:\n  l2: {choices: [0.0, .inf]}\n", "finite number", "params.l2.choices.1", 4),
    (BASE + "study:\n  timeout: .inf\n", "finite number", "study.timeout", 4),
    ("data: {source: iris, test_size: .nan}\n", "finite number", "data.test_size", 1),
    (BASE + "validation:\n  val_fraction: .nan\n", "finite number", "validation.val_fraction", 4),
    # absurd sizes, with the reason
    (BASE + "params:\n  width: 1e308\n", "width must be <= 16,384", "params.width", 4),
    (BASE + "params:\n  depth: 1000\n", "depth must be <= 64", "params.depth", 4),
    (BASE + "params:\n  width: {low: 8, high: 100000}\n", "1 GiB", "params.width", 4),
    (
        BASE + "params:\n  epochs: {choices: [10, 10000000]}\n",
        "epochs must be <=",
        "params.epochs",
        4,
    ),
    (BASE + "params:\n  batch_size: 1e9\n", "batch_size must be <=", "params.batch_size", 4),
    # counts that must be positive
    (
        BASE + "training:\n  steps_per_execution: 0\n",
        "greater than or equal to 1",
        "training.steps_per_execution",
        4,
    ),
    (BASE + "training:\n  pack_size: 0\n", "greater than or equal to 1", "training.pack_size", 4),
    # a parameter written as a list
    (BASE + "params:\n  depth: [1, 2]\n", "a range `{low", "params.depth", 4),
]


@pytest.mark.parametrize(("text", "match", "key", "line"), BAD)
def test_bad_space_is_one_located_error(text: str, match: str, key: str, line: int) -> None:
    with pytest.raises(SpaceError, match=match) as info:
        parse_space(text, file="spaces/bad.yaml")
    assert (info.value.file, info.value.key, info.value.line) == ("spaces/bad.yaml", key, line)
    assert str(info.value).startswith(f"spaces/bad.yaml:{line}: {key}: ")


@pytest.mark.parametrize(
    ("written", "expected"),
    [("1e-3", 1e-3), ("1E-5", 1e-5), ("2e2", 200.0), ("+1.5e-4", 1.5e-4), ("0.001", 0.001)],
)
def test_exponents_without_a_dot_are_numbers(written: str, expected: float) -> None:
    """YAML 1.1 reads `1e-3` as a string; a user means the number."""
    space = parse_space(
        BASE + f"params:\n  l2: {written}\n  learning_rate: {{low: 1e-4, high: 1e-1, log: true}}\n"
    )
    assert space.params.l2 == pytest.approx(expected)
    assert space.params.learning_rate.low == pytest.approx(1e-4)  # type: ignore[union-attr]


def test_true_and_one_are_different_choices() -> None:
    parse_space(BASE + "params:\n  batch_norm: {choices: [true, false]}\n")  # no error
    with pytest.raises(SpaceError, match="listed twice"):
        parse_space(BASE + "params:\n  batch_norm: {choices: [true, false, true]}\n")


def test_a_space_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin.yaml"
    path.write_bytes(b"data:\n  source: iris\n# caf\xe9\n")
    with pytest.raises(SpaceError, match="not UTF-8 text") as info:
        load_space(path)
    assert info.value.line == 3


def test_a_space_path_that_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(SpaceError, match="is a directory"):
        load_space(tmp_path)


def _space(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


def _csv(tmp_path: Path, frame: pd.DataFrame) -> str:
    path = tmp_path / "d.csv"
    frame.to_csv(path, index=False)
    return str(path)


def test_a_csv_with_a_header_and_no_rows(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("x,y\n")
    space = load_space(
        _space(
            tmp_path, f"study: {{trials: 2}}\ndata:\n  source: {tmp_path / 'd.csv'}\n  target: y\n"
        )
    )
    with pytest.raises(DataError, match="has no rows") as info:
        prepare(space)
    assert info.value.key == "data.source" and info.value.line == 3


def test_an_empty_csv(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("")
    space = load_space(_space(tmp_path, f"data: {{source: {tmp_path / 'd.csv'}, target: y}}\n"))
    with pytest.raises(DataError, match="is empty"):
        prepare(space)


@pytest.mark.parametrize(
    ("validation", "match"),
    [
        ("{scheme: holdout, val_fraction: 0.01}", "one row of each of the 3 classes"),
        ("{scheme: holdout, val_fraction: 0.99}", "one row of each of the 3 classes"),
        ("{scheme: holdout, val_fraction: 0.001, stratify: false}", None),  # 1 row is enough
    ],
)
def test_a_validation_part_too_small_for_each_class(
    tmp_path: Path, validation: str, match: str | None
) -> None:
    space = load_space(_space(tmp_path, f"data: {{source: iris}}\nvalidation: {validation}\n"))
    if match is None:
        assert len(prepare(space).folds[0].val) == 1
        return
    with pytest.raises(DataError, match=match) as info:
        prepare(space)
    assert info.value.key == "validation.val_fraction" and info.value.line == 2


def test_data_errors_carry_the_line_of_their_key(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": [1.0, 2, 3, 4], "y": [0, 1, 0, 1]})
    text = f"study: {{trials: 2}}\n\ndata:\n  source: {_csv(tmp_path, frame)}\n  target: label\n"
    with pytest.raises(DataError) as info:
        prepare(load_space(_space(tmp_path, text)))
    assert info.value.line == 5 and str(info.value).startswith(
        f"{tmp_path / 's.yaml'}:5: data.target: "
    )
    # a key the file leaves out: the line of its section
    text = "study: {trials: 2}\ndata:\n  source: iris\nvalidation: {folds: 80}\n"
    with pytest.raises(DataError) as info:
        prepare(load_space(_space(tmp_path, text)))
    assert info.value.key == "validation.folds" and info.value.line == 4


def test_a_hypermodel_file_with_a_syntax_error(tmp_path: Path) -> None:
    (tmp_path / "hm.py").write_text("import keras\n\ndef build_model(hp)\n    return None\n")
    space = load_space(
        _space(tmp_path, "data: {source: iris}\nmodel: {hypermodel: hm.py:build_model}\n")
    )
    with pytest.raises(SpaceError, match=r"hm.py:3: expected ':'") as info:
        prepare(space)
    assert info.value.key == "model.hypermodel" and "Traceback" not in str(info.value)


def test_a_hypermodel_file_that_raises_on_import(tmp_path: Path) -> None:
    (tmp_path / "hm2.py").write_text("import keras\nSIZE = 1 / 0\n")
    space = load_space(
        _space(tmp_path, "data: {source: iris}\nmodel: {hypermodel: hm2.py:build_model}\n")
    )
    with pytest.raises(SpaceError, match=r"hm2.py:2: importing it raised ZeroDivisionError"):
        prepare(space)


# ---------------------------------------------------------------- missing targets


def _with_missing(tmp_path: Path) -> str:
    rng = np.random.default_rng(0)
    y = rng.normal(size=60)
    y[[3, 17, 40]] = np.nan
    return _csv(
        tmp_path, pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60), "y": y})
    )


def test_missing_targets_are_refused_with_the_option_named(tmp_path: Path) -> None:
    space = load_space(
        _space(tmp_path, f"data: {{source: {_with_missing(tmp_path)}, target: y}}\n")
    )
    with pytest.raises(DataError, match=r"3 missing .* `data.missing_target: drop`"):
        prepare(space)


def test_missing_targets_dropped_before_the_test_split(tmp_path: Path) -> None:
    text = f"data: {{source: {_with_missing(tmp_path)}, target: y, missing_target: drop}}\n"
    prep = prepare(load_space(_space(tmp_path, text)))
    assert prep.data.dropped_rows == 3 and len(prep.data.y) == 57
    assert not np.isnan(prep.data.y).any()
    assert len(prep.split.train) + len(prep.split.test) == 57


def test_missing_targets_dropped_are_recorded_on_the_study_and_its_run(tmp_path: Path) -> None:
    import mlflow
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    text = (
        "study: {name: gaps, trials: 1, pruner: none}\n"
        f"data: {{source: {_with_missing(tmp_path)}, target: y, missing_target: drop}}\n"
        "validation: {scheme: holdout}\n"
        "params: {depth: 1, width: 4, epochs: 2, patience: 1}\n"
        "training: {engine: sequential}\n"
    )
    out = run_cli(
        "run", str(_space(tmp_path, text)), "--no-select", "--json", "--home", str(tmp_path / "m")
    )
    assert out.returncode == 0, out.stderr
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "m" / "optuna.journal")))
    study = optuna.load_study(study_name="gaps", storage=storage)
    assert study.user_attrs["dropped_rows"] == 3
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'm' / 'mlflow.db'}")
    run = client.get_run(json.loads(out.stdout)["parent_run_id"])
    assert run.data.params["data.dropped_rows"] == "3" and run.data.params["data.rows"] == "57"


# ---------------------------------------------------------------- the command line


CLI_CASES = [
    (
        "dup.yaml",
        b"data: {source: iris}\nparams:\n  width: 8\n  width: 16\n",
        "dup.yaml:4: width: key `width` is written twice",
    ),
    ("latin.yaml", b"data: {source: iris}\n# \xff\n", "latin.yaml:2: not UTF-8 text"),
    ("nan.yaml", b"data: {source: iris}\nparams: {dropout: .nan}\n", "nan.yaml:2: params.dropout"),
    (
        "holdout.yaml",
        b"data: {source: iris}\nvalidation: {scheme: holdout, val_fraction: 0.01}\n",
        "holdout.yaml:2: validation.val_fraction",
    ),
    ("folder", None, "folder: is a directory"),
]


def _sandbox(tmp_path: Path) -> dict[str, str]:
    """The environment of a command whose every default folder (home, caches, Keras' and
    matplotlib's) lies under `tmp_path`, unmade: any write shows in its listing."""
    home = str(tmp_path / "home")
    return {
        **os.environ,
        "HOME": home,
        "XDG_CACHE_HOME": f"{home}/.cache",
        "KERAS_HOME": f"{home}/.keras",
        "MPLCONFIGDIR": f"{home}/.matplotlib",
        "SEARCH_JAX_CACHE": f"{home}/jax",
    }


@pytest.mark.parametrize(("name", "content", "expected"), CLI_CASES)
def test_cli_refuses_before_tensorflow_loads_and_writes_nothing(
    tmp_path: Path, name: str, content: bytes | None, expected: str
) -> None:
    if content is None:
        (tmp_path / name).mkdir()
    else:
        (tmp_path / name).write_bytes(content)
    before = sorted(p.name for p in tmp_path.iterdir())
    code = (
        "import sys; from search.cli.main import main; rc = main(sys.argv[1:]); "
        "print('tensorflow' in sys.modules, 'keras' in sys.modules); sys.exit(rc)"
    )
    import subprocess

    out = subprocess.run(
        [sys.executable, "-c", code, "run", name],  # the default store: ./mlruns
        cwd=tmp_path,
        env=_sandbox(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines
    assert out.stdout.split() == ["False", "False"]  # found before TensorFlow and Keras load
    # nothing written: no ./mlruns, no home folder, no cache; the input alone
    assert before == [name]
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_cli_submit_writes_nothing_on_bad_data(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("data: {source: nope.csv, target: y}\n")
    out = run_cli("submit", "s.yaml", cwd=tmp_path, env=_sandbox(tmp_path))
    assert out.returncode == 2 and "s.yaml:1: data.source: no such data file" in out.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["s.yaml"]  # the input alone


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (
            ["select", "nope"],
            "study 'nope' not found: there is no storage at mlruns/optuna.journal",
        ),
        (["report", "nope"], "study 'nope' not found"),
        (["best", "nope"], "study 'nope' not found"),
        (["reproduce", "0" * 32], f"run '{'0' * 32}' not found: there is no MLflow store"),
    ],
)
@pytest.mark.parametrize("store", ["absent", "present"])
def test_a_command_reading_a_missing_study_or_run_writes_nothing(
    tmp_path: Path, args: list[str], match: str, store: str
) -> None:
    """Not in an empty folder (no store made), not beside a store that lacks it (no Keras
    or matplotlib cache made in the home folder)."""
    if store == "present":
        made = run_cli("submit", _space(tmp_path, "data: {source: iris}\n").name, cwd=tmp_path)
        assert made.returncode == 0, made.stderr[-2000:]
        match = match.split(":", 1)[0].removesuffix(" not found") + " not found"
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    # files unchanged (a folder's time moves with a reader's lock file, made and removed)
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    out = run_cli(*args, cwd=tmp_path, env=_sandbox(tmp_path), timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith(f"error: {match}"), line
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()} == stamps


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["run", "SPACE", "--trials", "0"], "--trials must be >= 1, got 0"),
        (["run", "SPACE", "--timeout", "nan"], "--timeout must be > 0, got nan"),
        (["run", "SPACE", "--timeout", "-5"], "--timeout must be > 0"),
        (["run", "SPACE", "--workers", "0"], "--workers must be >= 1"),
        (["serve", "--per-gpu", "0"], "--per-gpu must be >= 1"),
        (["serve", "--recycle", "0"], "--recycle must be >= 1"),
        (["serve", "--heartbeat", "inf"], "--heartbeat must be > 0"),
        (["serve", "--heartbeat", "10", "--grace", "5"], "--grace (5 s) must be longer"),
        (["serve", "--gpu-memory-mb", "0"], "--gpu-memory-mb must be >= 1"),
        (["best", "x", "-n", "0"], "-n must be >= 1"),
        (["submit", "SPACE", "--trials", "-1"], "--trials must be >= 1"),
    ],
)
def test_bad_numbers_on_the_command_line(tmp_path: Path, args: list[str], match: str) -> None:
    space = _space(tmp_path, "data: {source: iris}\n")
    args = [space.name if a == "SPACE" else a for a in args]
    out = run_cli(*args, cwd=tmp_path, env=_sandbox(tmp_path), timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    (line,) = out.stderr.strip().splitlines()
    assert line == f"error: {match}" or line.startswith(f"error: {match}"), line
    assert [p.name for p in tmp_path.iterdir()] == [space.name]  # the input alone


@pytest.mark.parametrize(
    ("frame", "spec", "match", "key"),
    [
        (
            pd.DataFrame({"x": [1.0, np.inf, 3, 4, 5, 6, 7, 8], "y": [0, 1] * 4}),
            {"target": "y"},
            r"column 'x' of .* holds 1 infinite values, first at row 1",
            "data.source",
        ),
        (
            pd.DataFrame({"x": np.arange(8.0), "y": [0.5, 1.5, -np.inf, 2, 3, 4, 5, 6]}),
            {"target": "y"},
            r"column 'y' .* holds 1 infinite values",
            "data.target",
        ),
        (
            pd.DataFrame({"x": np.arange(8.0), "y": [0, 1] * 4}),
            {"target": "y", "drop_columns": ["y"]},
            "is the target; it cannot also be in data.drop_columns",
            "data.drop_columns",
        ),
        (
            pd.DataFrame({"x": np.arange(8.0), "y": [0, 1] * 4}),
            {"target": "y", "group_column": "y"},
            "cannot also be in data.group_column",
            "data.group_column",
        ),
    ],
)
def test_data_that_no_model_can_take(
    tmp_path: Path, frame: pd.DataFrame, spec: dict[str, object], match: str, key: str
) -> None:
    flow = ", ".join(f"{k}: {v}" for k, v in spec.items())
    text = f"data: {{source: {_csv(tmp_path, frame)}, {flow}}}\n"
    with pytest.raises(DataError, match=match) as info:
        prepare(load_space(_space(tmp_path, text)))
    assert info.value.key == key and info.value.line == 1


@pytest.mark.parametrize("storage", [None, "sqlite:///studies.db", "runs.journal"])
def test_commands_that_only_read_make_no_store(tmp_path: Path, storage: str | None) -> None:
    """`status` in a folder where nothing was queued says so; `best` of a study in a store
    that does not exist is one line, exit 2; neither makes the store (a journal, a SQLite
    file, the mlruns folder)."""
    env = _sandbox(tmp_path)
    extra = [] if storage is None else ["--storage", storage]
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    shown = run_cli("status", *extra, cwd=tmp_path, env=env, timeout=120)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "no studies queued" in shown.stdout
    best = run_cli("best", "nope", *extra, cwd=tmp_path, env=env, timeout=120)
    assert best.returncode == 2 and "study 'nope' not found" in best.stderr
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before
