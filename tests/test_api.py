"""The public names: pinned, importable, and cheap to import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import search
from tests.conftest import ROOT, tiny_space


def test_public_names_are_pinned() -> None:
    assert sorted(search.__all__) == [
        "DataError",
        "InputError",
        "Queue",
        "SearchError",
        "SearchFailed",
        "SearchResult",
        "Space",
        "SpaceError",
        "TrialFailed",
        "load_space",
        "reproduce",
        "run_search",
        "select",
        "study_report",
        "submit",
    ]
    for name in search.__all__:
        assert getattr(search, name) is not None


def test_import_does_not_load_tensorflow() -> None:
    code = "import sys, search; search.load_space; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"  # `search --help` and input errors stay fast


def test_every_public_name_is_what_the_readme_says_even_after_every_module_loaded() -> None:
    """A submodule of the same name would shadow a function once imported (`reproduce`)."""
    import importlib
    import inspect
    import pkgutil

    for module in pkgutil.iter_modules(search.__path__):
        importlib.import_module(f"search.{module.name}")
    functions = ("load_space", "reproduce", "run_search", "select", "study_report", "submit")
    for name in functions:
        assert inspect.isfunction(getattr(search, name)), name
        exec(f"from search import {name} as imported", scope := {})
        assert scope["imported"] is getattr(search, name) and inspect.isfunction(scope["imported"])
    for name in sorted(set(search.__all__) - set(functions)):
        assert inspect.isclass(getattr(search, name)), name


def test_selection_follows_a_space_changed_in_memory(tmp_path: Path) -> None:
    from search.space.file import load_space
    from search.space.schema import SelectionSpec

    space = load_space(tiny_space(tmp_path, name="mem", trials=1, folds=2, epochs=2))
    changed = space.model_copy(
        update={"selection": SelectionSpec(top_k=1, recheck_folds=2, bootstrap=100, champion=False)}
    )
    search.run_search(changed, home=tmp_path / "m", progress=False)
    result = search.select("mem", home=tmp_path / "m")
    assert result.version == "" and result.model_uri == ""  # champion: false was followed
    assert len(result.candidates) == 1  # top_k: 1 too


def test_run_search_quiet_prints_nothing(tmp_path: Path) -> None:
    (tmp_path / "nan.yaml").write_text(
        "study: {name: nan, trials: 2, sampler: grid, pruner: none}\n"
        "data: {source: diabetes}\nvalidation: {scheme: holdout}\n"
        "params: {optimizer: sgd, learning_rate: {choices: [1.0e+12, 0.001]}, depth: 1,\n"
        "         width: 8, epochs: 3, patience: 1}\n"
        "training: {engine: sequential}\n"
    )
    code = (
        "import search, sys\n"
        "r = search.run_search('nan.yaml', home='m-QUIET', quiet=QUIET)\n"
        "print(r.counts['fail'], file=sys.__stdout__)\n"
    )
    loud = subprocess.run(
        [sys.executable, "-c", code.replace("QUIET", "False")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    quiet = subprocess.run(
        [sys.executable, "-c", code.replace("QUIET", "True")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    # what quiet must hide: Optuna's lines about the study and the failed trial (TensorFlow's
    # C++ lines at its import come before any argument is read: TF_CPP_MIN_LOG_LEVEL does)
    for line in ("A new study created", "failed with parameters"):
        assert line in loud.stderr and line not in quiet.stderr, line
    assert quiet.stdout.split()[-1] == "1"


def test_modules_and_functions_stay_small() -> None:
    """The house rules a newcomer can rely on: no module over 300 lines, no function
    over 45 (a long one is split by what it does, not wrapped)."""
    import ast

    too_long = []
    for path in sorted((ROOT / "search").rglob("*.py")):
        text = path.read_text()
        if text.count("\n") > 300:
            too_long.append(f"{path.name}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > 45:
                    too_long.append(f"{path.name}:{node.lineno} {node.name}: {size} lines")
    assert too_long == []


def test_user_attributes_are_named_in_one_module_only() -> None:
    """The study's and trials' user attributes are the search's schema: search.attrs names
    each once, and no other module spells one out."""
    import re

    from search.attrs import Study, Trial

    spelled = re.compile(
        r'(set_user_attr|set_study_user_attr)\(\s*"|set_trial_user_attr\(\s*[\w.]+,\s*"'
        r'|user_attrs(\.get\(|\[)\s*"|user_attrs=\{\s*"|"\s+(not\s+)?in\s+[\w.]*user_attrs'
    )
    found = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in sorted((ROOT / "search").rglob("*.py"))
        if path.name != "attrs.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if spelled.search(line)
    ]
    assert found == []
    for kind in (Study, Trial):  # no two attributes share a key
        keys = [v for k, v in vars(kind).items() if k.isupper()]
        assert len(set(keys)) == len(keys)
