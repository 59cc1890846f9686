"""The study report: valid PNG figures and one HTML page, as artifacts of the study run."""

from __future__ import annotations

from pathlib import Path

from mlflow.tracking import MlflowClient

from search.best import best_table
from search.report import SECTIONS, fold_curves, mean_curve, study_report
from search.runner import run_search
from search.selection.selector import select
from search.study import best_first, load_study
from search.tracking.runs import Tracker
from tests.conftest import tiny_space

PNG = b"\x89PNG\r\n\x1a\n"


def test_report_figures_and_page_are_logged(tmp_path: Path) -> None:
    space = tiny_space(tmp_path, name="rep", trials=4, folds=2, epochs=4, source="breast_cancer")
    text = space.read_text() + "selection: {top_k: 2, recheck_folds: 2, bootstrap: 100}\n"
    space.write_text(text)
    result = run_search(space, home=tmp_path / "m", progress=False)
    select("rep", home=tmp_path / "m")
    import matplotlib

    matplotlib.use("svg")  # a notebook's own backend: the report must leave it alone
    report = study_report("rep", home=tmp_path / "m")
    assert matplotlib.get_backend() == "svg"
    assert "PNG" not in repr(report) and repr(report).startswith("Report(figures: history (")
    assert report._repr_html_() == report.html
    assert set(report.figures) == set(SECTIONS), report.skipped
    assert all(data.startswith(PNG) for data in report.figures.values())
    client = MlflowClient(result.tracking_uri)
    logged = {a.path for a in client.list_artifacts(result.parent_run_id, "report")}
    assert {f"report/{k}.png" for k in SECTIONS} | {"report/report.html"} <= logged
    page = Path(
        client.download_artifacts(result.parent_run_id, "report/report.html", str(tmp_path))
    ).read_text()
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    for key in ("final-test", "best-trials", *SECTIONS):
        assert f"id='{key}'" in page
    best = best_first(load_study("rep", None, tmp_path / "m"))[0]
    assert best.user_attrs["mlflow_run_id"] in page  # the best trials' table, with run ids
    complete = sum(1 for t in best_first(load_study("rep", None, tmp_path / "m")))
    assert f"weak:</b> drawn from {complete} complete trials" in page
    assert page.count("data:image/png;base64,") == len(SECTIONS)  # self-contained
    assert "final test (trial" in page and "baseline" in page
    table = best_table("rep", storage=None, home=tmp_path / "m", n=2)
    assert table.splitlines()[1].startswith("trial") and len(table.splitlines()) == 4
    # the overfitting figure's data: each fold's Keras loss curves, as long as it trained
    tracker = Tracker(result.tracking_uri, "rep", artifact_root=tmp_path / "m" / "artifacts")
    run = best.user_attrs["mlflow_run_id"]
    for key in ("loss", "val_loss"):
        curves = fold_curves(tracker, run, key)
        assert [len(c) for c in curves] == best.user_attrs["epochs"]


def test_the_mean_curve_averages_the_folds_that_reached_each_epoch() -> None:
    mean = mean_curve([[1.0, 2.0, 3.0], [3.0, 4.0], [5.0]])
    assert list(mean) == [3.0, 3.0, 3.0]


def test_best_shows_run_ids_and_marks_without_loading_keras(tmp_path: Path) -> None:
    import subprocess
    import sys

    from search.study import load_study

    space = tiny_space(tmp_path, name="marks", trials=3, folds=2, epochs=2)
    space.write_text(space.read_text().replace("high: 16, per_layer: true", "high: 16"))
    result = run_search(space, home=tmp_path / "m", progress=False)
    study = load_study("marks", None, tmp_path / "m")
    best = best_first(study)
    study.set_user_attr("selected", {"trial": best[1].number, "run_id": "r", "version": "1"})
    study.set_user_attr("champion", {"trial": best[0].number, "run_id": "r", "version": "1"})
    code = (
        "import sys; from search.cli.main import main; rc = main(sys.argv[1:]); "
        "print('keras' in sys.modules, 'tensorflow' in sys.modules); sys.exit(rc)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, "best", "marks", "--home", str(tmp_path / "m")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[-1] == "False False"  # neither Keras nor TensorFlow was loaded
    rows = {line.split()[0]: line for line in lines[2:-1]}
    assert "@champion" in rows[str(best[0].number)] and "selected" in rows[str(best[1].number)]
    for t in best:
        assert t.user_attrs["mlflow_run_id"] in rows[str(t.number)]
    assert " width " in f" {lines[1]} " and "width_0" not in lines[1]  # one width, said once
    assert "precision" not in lines[1] and result.best_trial is not None


def test_a_regressions_overfitting_figure_is_in_the_targets_units(tmp_path: Path) -> None:
    """The figure draws MAE per epoch as MLflow holds it for each fold: diabetes' MAE, in
    the tens (the target's units), not the ~0.7 of a standardized target."""
    import matplotlib.pyplot as plt

    from search.report import _overfitting

    space = tiny_space(tmp_path, name="reg", trials=2, folds=2, epochs=3, source="diabetes")
    result = run_search(space, home=tmp_path / "m", progress=False)
    study = load_study("reg", None, tmp_path / "m")
    tracker = Tracker(result.tracking_uri, "reg", artifact_root=tmp_path / "m" / "artifacts")
    run = best_first(study)[0].user_attrs["mlflow_run_id"]
    for key in ("mae", "val_mae"):
        curves = fold_curves(tracker, run, key)
        assert curves and all(10 < v < 400 for c in curves for v in c), (key, curves)
    fig = _overfitting(study, tracker)
    assert "target's units" in fig.axes[0].get_ylabel()
    drawn = [line.get_ydata() for line in fig.axes[1].get_lines()]
    assert drawn and all(10 < v < 400 for ys in drawn for v in ys)
    plt.close(fig)
