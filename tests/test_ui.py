"""The MLflow UI as a person sees it: a real server and headless Chromium.

.ci/run installs Debian's chromium; elsewhere the test skips without it, but under CI=true
a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from search.cli.main import UI_URL
from search.report import study_report
from search.runner import run_search
from search.selection.selector import select
from search.summary import SearchResult
from tests.conftest import ROOT, mlflow_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

SPACE = """
study: {name: ui, trials: 2, sampler: random, pruner: none}
data: {source: breast_cancer}
validation: {scheme: kfold, folds: 2}
selection: {top_k: 1, recheck_folds: 2, bootstrap: 100}
params: {depth: 1, width: 8, epochs: 3, patience: 1}
"""


def _need_browser() -> None:
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append("chromium (apt-get install chromium)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install playwright)")
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {', '.join(missing)} is missing", pytrace=False)
        pytest.skip(f"needs {', '.join(missing)}")


@pytest.fixture
def ui(tmp_path: Path) -> Iterator[tuple[str, SearchResult]]:
    _need_browser()
    (tmp_path / "ui.yaml").write_text(SPACE)
    result = run_search(tmp_path / "ui.yaml", home=tmp_path / "m", progress=False)
    select("ui", home=tmp_path / "m")
    study_report("ui", home=tmp_path / "m")
    with mlflow_server("ui", "--backend-store-uri", result.tracking_uri, timeout=90) as url:
        yield url, result


def test_study_trials_and_champion_are_on_the_page(ui: tuple[str, SearchResult]) -> None:
    """The path the README shows: the experiment in MLflow's training view (not its GenAI
    one), the study run with its trials, its report, and the champion; screenshots kept."""
    from playwright.sync_api import sync_playwright

    url, result = ui
    shots = ROOT / "build" / "ui"
    shots.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(result.tracking_uri)
    kind = client.get_experiment(result.experiment_id).tags.get("mlflow.experimentKind")
    assert kind == "custom_model_development"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(UI_URL.replace("http://127.0.0.1:5000", url).format(id=result.experiment_id))
        cells = page.locator("[role=gridcell]")
        cells.first.wait_for(timeout=60_000)
        body = page.inner_text("body")
        assert "Model registry" in body and "Evaluation runs" not in body  # the training view
        close = page.get_by_role("button", name="Close", exact=True)
        if close.count():  # MLflow's assistant panel: out of the screenshots
            close.first.click()
        study_cell = page.locator("[role=gridcell]", has_text="ui").first
        study_cell.wait_for(timeout=30_000)
        study_cell.locator("button").first.click()  # the "+" that shows the child runs
        for name in ("trial-0", "trial-1", "selection"):
            page.get_by_text(name, exact=True).first.wait_for(timeout=30_000)
        page.screenshot(path=str(shots / "runs.png"))
        run_page = f"{url}/#/experiments/{result.experiment_id}/runs/{result.parent_run_id}"
        page.goto(f"{run_page}?workflowType=machine_learning")
        page.get_by_text("Artifacts", exact=True).first.click()
        page.get_by_text("report", exact=True).first.click()
        page.get_by_text("report.html", exact=True).first.click()
        page.frame_locator("iframe").get_by_text("Final test", exact=True).first.wait_for(
            timeout=60_000
        )  # the report page, shown in a frame
        assert "Evaluations" not in page.inner_text("body")  # the study run's breadcrumb
        page.screenshot(path=str(shots / "report.png"))
        page.goto(f"{url}/#/models/ui")
        page.get_by_text("Version 1").first.wait_for(timeout=60_000)
        page.get_by_text("champion").first.wait_for(timeout=30_000)
        page.screenshot(path=str(shots / "champion.png"))
        browser.close()
    for shot in ("runs", "report", "champion"):
        assert (shots / f"{shot}.png").stat().st_size > 10_000
