"""The public names: pinned, importable, and cheap to import."""

from __future__ import annotations

import subprocess
import sys

import search


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
