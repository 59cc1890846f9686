"""The study report: valid PNG figures and one HTML page, as artifacts of the study run."""

from __future__ import annotations

from pathlib import Path

from mlflow.tracking import MlflowClient

from search.report import SECTIONS, best_table, study_report
from search.runner import run_search
from search.selection import select
from tests.conftest import tiny_space

PNG = b"\x89PNG\r\n\x1a\n"


def test_report_figures_and_page_are_logged(tmp_path: Path) -> None:
    space = tiny_space(tmp_path, name="rep", trials=4, folds=2, epochs=4, source="breast_cancer")
    text = space.read_text() + "selection: {top_k: 2, recheck_folds: 2, bootstrap: 100}\n"
    space.write_text(text)
    result = run_search(space, home=tmp_path / "m", progress=False)
    select("rep", home=tmp_path / "m")
    report = study_report("rep", home=tmp_path / "m")
    assert set(report.figures) == set(SECTIONS), report.skipped
    assert all(data.startswith(PNG) for data in report.figures.values())
    client = MlflowClient(result.tracking_uri)
    logged = {a.path for a in client.list_artifacts(result.parent_run_id, "report")}
    assert {f"report/{k}.png" for k in SECTIONS} | {"report/report.html"} <= logged
    page = Path(
        client.download_artifacts(result.parent_run_id, "report/report.html", str(tmp_path))
    ).read_text()
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    for key in ("final-test", *SECTIONS):
        assert f"id='{key}'" in page
    assert page.count("data:image/png;base64,") == len(SECTIONS)  # self-contained
    assert "final test (trial" in page and "baseline" in page
    table = best_table("rep", storage=None, home=tmp_path / "m", n=2)
    assert table.splitlines()[1].startswith("trial") and len(table.splitlines()) == 4
