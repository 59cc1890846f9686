"""The README's Python example runs as written."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_readme_python_example_runs(tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"From Python:\n\n```python\n(.*?)```", text, re.S)
    assert block is not None, "the README lost its Python example"
    shutil.copytree(ROOT / "spaces", tmp_path / "spaces")
    code = block.group(1)
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "best: trial" in done.stdout
    assert "proba_1" in done.stdout  # the champion took raw rows
    assert (tmp_path / "mlruns" / "mlflow.db").exists()


def test_every_test_the_promise_map_names_exists() -> None:
    """tests/README.md maps the README's promises onto tests: each one it names is there,
    and every test module appears in it."""
    text = (ROOT / "tests" / "README.md").read_text()
    named = re.findall(r"`(test_\w+)::(\w+|\*)`", text)
    assert len(named) > 50
    for module, test in named:
        source = (ROOT / "tests" / f"{module}.py").read_text()
        assert test == "*" or re.search(rf"^def {test}\(", source, re.M), f"{module}::{test}"
    modules = {p.stem for p in (ROOT / "tests").glob("test_*.py")}
    assert modules <= {m for m, _ in named} | {"test_readme"}, modules - {m for m, _ in named}
