"""Screenshots of the MLflow UI on a store, taken by a real headless Chromium, for the docs and as a check
that the UI shows what the project logs: the training view, distinct run names, the Dataset column.

    python scripts/ui_screenshots.py --store sqlite:///mlruns/mlflow.db --out docs/images
    python scripts/ui_screenshots.py --store ... --experiment gradreg --sweep 20250101-120000-3fa2

It starts `mlflow ui` on the store (127.0.0.1, a free port), waits for it, and writes four PNGs of the
latest sweep in the experiment (or the one given): `runs_table.png` (its job runs with val/test accuracy
and the params that vary), `sweep_charts.png` (the compare view's charts, filtered by `--charts`),
`run_metrics.png` (the best job's charts, filtered by `--run-charts`), `run_artifacts.png` (its
first plot) and, when the sweep's parent run has its gradient-health dashboard, `sweep_dashboard.png`
(that page inside the UI's artifact view). Runs shorter than an epoch (no `val/acc`) are shown too. Each is
reduced to a palette PNG under `--max-kb` (150). `shots.json` says which runs the pages showed and
what the runs table was checked for (training view, every job's name, dataset digests); the exit code
is 1 when a check failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from headless_chromium import Browser  # noqa: E402

from src.tracking.short_forms import BOOKKEEPING, matches  # noqa: E402
from src.tracking.ui_links import VIEW_QUERY  # noqa: E402

MLFLOW_CLI = Path(sys.executable).parent / "mlflow"
QUIET_UI = {"mlflow.assistant.panelOpen_v1": "false", "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": "true"}
MAX_VARYING_COLUMNS = 3
ACCURACIES = ("val/acc", "test/acc")  # runs table columns, when the jobs logged them
DASHBOARD_DIR, DASHBOARD_FILE = "dashboard", "gradient_health.html"  # src/report/dashboard.py, on the parent run


@dataclass
class Target:
    """What the screenshots show, chosen from the store."""

    experiment_id: str
    experiment_name: str
    sweep_id: str
    run_ids: list[str]
    run_names: list[str]
    best_run_id: str
    best_run_name: str
    varying_params: list[str]
    artifact: str | None
    parent_run_id: str = ""
    dashboard: str | None = None  # the parent run's dashboard artifact, when the sweep made one
    metric_columns: tuple[str, ...] = ()  # of val/acc and test/acc, those the jobs logged


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def mlflow_ui(store: str, log_path: Path, timeout_s: float = 180.0) -> Iterator[str]:
    """`mlflow ui` on 127.0.0.1 and a free port; yields its URL once /health answers; stops its process group."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    with log_path.open("w") as log:
        server = subprocess.Popen([str(MLFLOW_CLI), "ui", "--backend-store-uri", store, "--host", "127.0.0.1",
                                   "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env,
                                  start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if server.poll() is not None:
                    raise RuntimeError(f"mlflow ui exited ({server.returncode}):\n{log_path.read_text()[-2000:]}")
                try:
                    with urllib.request.urlopen(f"{url}/health", timeout=2):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"mlflow ui did not answer within {timeout_s:.0f} s") from None
                    time.sleep(0.5)
            yield url
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


def first_png(mlflow_client: Any, run_id: str, folder: str | None = None) -> str | None:
    """The first PNG among the run's artifacts (depth first), or None."""
    for item in mlflow_client.list_artifacts(run_id, folder):
        if item.is_dir:
            if found := first_png(mlflow_client, run_id, item.path):
                return found
        elif item.path.endswith(".png"):
            return item.path
    return None


def choose(store: str, experiment: str | None, sweep: str | None) -> Target:
    """The sweep to show (the latest in the experiment unless given) and its best job by val/acc."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store)
    experiments = [client.get_experiment_by_name(experiment)] if experiment else client.search_experiments()
    if experiments == [None]:
        raise SystemExit(f"--experiment {experiment}: no such experiment in {store}")
    ids = [e.experiment_id for e in experiments]
    query = "tags.sweep_role = 'parent'" + (f" AND tags.sweep_id = '{sweep}'" if sweep else "")
    parents = client.search_runs(ids, query, order_by=["attributes.start_time DESC"], max_results=1)
    if not parents:
        raise SystemExit(f"no sweep {'with id ' + sweep if sweep else ''} in {store}: run one with -m first")
    parent = parents[0]
    sweep_id = parent.data.tags["sweep_id"]
    jobs = client.search_runs([parent.info.experiment_id], f"tags.sweep_id = '{sweep_id}' AND tags.sweep_role = 'job'")
    if not jobs:
        raise SystemExit(f"sweep {sweep_id} has no job runs")
    columns = tuple(m for m in ACCURACIES if any(m in r.data.metrics for r in jobs))  # none in runs under an epoch
    best = max(jobs, key=lambda r: tuple(r.data.metrics.get(m, float("-inf")) for m in columns))
    dashboard = f"{DASHBOARD_DIR}/{DASHBOARD_FILE}"
    has_dashboard = any(a.path == dashboard for a in client.list_artifacts(parent.info.run_id, DASHBOARD_DIR))
    keys = sorted({k for r in jobs for k in r.data.params})
    varying = [k for k in keys if len({r.data.params.get(k) for r in jobs}) > 1 and not matches(k, BOOKKEEPING)]
    return Target(
        experiment_id=parent.info.experiment_id, experiment_name=client.get_experiment(parent.info.experiment_id).name,
        sweep_id=sweep_id, run_ids=[r.info.run_id for r in jobs], run_names=[r.info.run_name for r in jobs],
        best_run_id=best.info.run_id, best_run_name=best.info.run_name, varying_params=varying[:MAX_VARYING_COLUMNS],
        artifact=first_png(client, best.info.run_id), parent_run_id=parent.info.run_id,
        dashboard=dashboard if has_dashboard else None, metric_columns=columns,
    )


def runs_url(base: str, target: Target, mode: str = "TABLE") -> str:
    """The sweep's job runs, sorted by val/acc (or test/acc; by name without either), which also lists them
    flat, not folded under the parent."""
    order = f"metrics.`{target.metric_columns[0]}`" if target.metric_columns else "attributes.run_name"
    query = {"searchFilter": f"tags.sweep_id = '{target.sweep_id}' AND tags.sweep_role = 'job'",
             "orderByKey": order, "orderByAsc": "false" if target.metric_columns else "true",
             "compareRunsMode": mode}
    return f"{base}/#/experiments/{target.experiment_id}/runs?{VIEW_QUERY}&{urllib.parse.urlencode(query)}"


def run_page(base: str, target: Target, tab: str) -> str:
    return f"{base}/#/experiments/{target.experiment_id}/runs/{target.best_run_id}/{tab}?{VIEW_QUERY}"


async def open_page(page: Browser, url: str, text: str, reload: bool = False) -> None:
    await page.goto(url)
    if reload:  # the UI reads its local storage when it starts
        await page.evaluate("location.reload()")
    await page.wait_for_text(text, timeout_s=90)


async def search_charts(page: Browser, text: str) -> None:
    """Type into the charts' search box, then wait for a drawn chart."""
    await page.evaluate("[...document.querySelectorAll('input')].find(e => e.placeholder === "
                        "'Search metric charts').focus()")
    await page.send("Input.insertText", text=text)
    await page.wait_for("document.querySelectorAll('.js-plotly-plot, canvas').length > 0", 90, "a chart")
    await asyncio.sleep(3)  # plotly animates into place


async def toggle_columns(page: Browser, names: list[str]) -> None:
    """Tick (or untick) columns in the runs table's Columns menu, by their labels."""
    if not await page.click_text("Columns"):
        raise RuntimeError("the runs table has no Columns menu")
    await page.wait_for_text("Metrics (", timeout_s=30)
    for name in names:
        if not await page.click_text(name, "[role=menuitemcheckbox], [role=option], label, span, div"):
            raise RuntimeError(f"the Columns menu has no {name!r}")
        await asyncio.sleep(0.5)
    await page.press_escape()
    await asyncio.sleep(1)


async def resize_column(page: Browser, header: str, width_px: float) -> None:
    """Drag the right edge of a runs-table column until it is `width_px` wide (the table keeps no setting)."""
    edge = await page.evaluate(
        "(() => { const h = [...document.querySelectorAll('.ag-header-cell')].find(e => e.innerText.trim() === "
        f"{json.dumps(header)}); if (!h) return null; const r = h.getBoundingClientRect();"
        " return [r.right - 2, r.top + r.height / 2, r.width]; })()")
    if edge:
        x, y, width = edge
        await page.drag((x, y), (x + width_px - width, y))
        await asyncio.sleep(1)


async def shoot(
    base: str, target: Target, out: Path, size: tuple[int, int], charts: tuple[str, str], dashboard_scroll: int = 0
) -> tuple[dict[str, str], dict[str, bool]]:
    """Take the four screenshots; return their paths and what the runs table showed (`checks`)."""
    shots: dict[str, str] = {}
    async with Browser(*size) as page:
        await page.goto(f"{base}/")
        await page.wait_for("document.readyState === 'complete'", 60, "the UI")
        await page.evaluate(";".join(f"localStorage.setItem({json.dumps(k)}, {json.dumps(v)})"
                                     for k, v in QUIET_UI.items()))
        await open_page(page, runs_url(base, target), target.best_run_name, reload=True)
        await page.wait_for_text("Dataset")
        checks = await page.evaluate(
            "(() => { const t = document.body.innerText; return {"
            " training_view: t.includes('Runs') && !t.includes('Observability'),"  # GenAI's sidebar has it
            f" all_run_names: {json.dumps(target.run_names)}.every(n => t.includes(n)),"
            " dataset_inputs: /\\(([0-9a-f]{8})\\)/.test(t) }; })()")
        await resize_column(page, "Run Name", 60 + 7.5 * max(len(n) for n in target.run_names))
        await resize_column(page, "Dataset", 270)  # the train split; the others on hover
        await resize_column(page, "Created", 125)
        await toggle_columns(page, ["Source", "Models", *target.metric_columns, *target.varying_params])
        rows_end = await page.evaluate("Math.max(...[...document.querySelectorAll('.ag-row')]"
                                       ".map(r => r.getBoundingClientRect().bottom))")
        shots["runs_table"] = str(await page.screenshot(out / "runs_table.png", height=max(420, rows_end + 60)))
        await open_page(page, runs_url(base, target, "CHART"), target.best_run_name)
        await search_charts(page, charts[0])
        shots["sweep_charts"] = str(await page.screenshot(out / "sweep_charts.png"))
        await open_page(page, run_page(base, target, "model-metrics"), target.best_run_name)
        await search_charts(page, charts[1])
        shots["run_metrics"] = str(await page.screenshot(out / "run_metrics.png"))
        tab = f"artifacts/{target.artifact}" if target.artifact else "artifacts"
        await open_page(page, run_page(base, target, tab), Path(target.artifact or "config").name)
        if target.artifact:
            await page.wait_for("[...document.images].some(i => i.complete && i.naturalWidth > 100)", 60, "the plot")
        await asyncio.sleep(2)
        shots["run_artifacts"] = str(await page.screenshot(out / "run_artifacts.png"))
        if target.dashboard:
            shots["sweep_dashboard"] = str(await shoot_dashboard(page, base, target, out, dashboard_scroll))
    return shots, checks


async def shoot_dashboard(page: Browser, base: str, target: Target, out: Path, scroll_px: int = 0) -> Path:
    """The sweep's gradient-health dashboard as the parent run's artifact view shows it (an iframe)."""
    url = (f"{base}/#/experiments/{target.experiment_id}/runs/{target.parent_run_id}/artifacts/{target.dashboard}"
           f"?{VIEW_QUERY}")
    await open_page(page, url, DASHBOARD_FILE)
    await page.wait_for("[...document.querySelectorAll('iframe')].some(f => f.getBoundingClientRect().height > 200)",
                        90, "the dashboard's frame")
    await asyncio.sleep(12)  # the frame parses 5 MB of Plotly, then draws every figure
    if scroll_px:  # past the page's heading, to the strip and the first heat map (the UI sandboxes the frame)
        x, y = await page.evaluate("(() => { const r = document.querySelector('iframe').getBoundingClientRect();"
                                   " return [r.left + r.width / 2, r.top + r.height / 2]; })()")
        await page.wheel(x, y, scroll_px)
        await asyncio.sleep(2)
    return await page.screenshot(out / "sweep_dashboard.png")


def shrink_png(path: Path, max_bytes: int) -> int:
    """Re-save as an optimized palette PNG, with fewer colours until it fits; the final size in bytes."""
    from PIL import Image

    with Image.open(path) as image:
        rgb = image.convert("RGB")
    for colors in (256, 128, 64, 32):
        rgb.quantize(colors=colors, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
        if path.stat().st_size <= max_bytes:
            break
    return path.stat().st_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", required=True, help="tracking URI of a local store, e.g. sqlite:///mlruns/mlflow.db")
    parser.add_argument("--out", type=Path, default=Path("docs/images"), help="folder for the PNGs")
    parser.add_argument("--experiment", help="experiment name (default: the one of the latest sweep)")
    parser.add_argument("--sweep", help="sweep id (default: the latest sweep)")
    parser.add_argument("--charts", default="train/", help="text the sweep's charts are filtered by (default: train/)")
    parser.add_argument("--run-charts", default="grad/", help="text the run's charts are filtered by (default: grad/)")
    parser.add_argument("--width", type=int, default=1440, help="browser width in pixels")
    parser.add_argument("--height", type=int, default=900, help="browser height in pixels")
    parser.add_argument("--max-kb", type=int, default=150, help="largest PNG size in kB")
    parser.add_argument("--dashboard-scroll", type=int, default=0, help="pixels to scroll the dashboard down")
    args = parser.parse_args(argv)
    if not args.store.startswith("sqlite:///"):
        parser.error(f"--store={args.store!r} is not allowed; it must be a local sqlite:/// store (the script "
                     "starts its own `mlflow ui` on it)")
    args.out.mkdir(parents=True, exist_ok=True)
    target = choose(args.store, args.experiment, args.sweep)
    with mlflow_ui(args.store, args.out / "mlflow_ui.log") as base:
        shots, checks = asyncio.run(shoot(base, target, args.out, (args.width, args.height),
                                          (args.charts, args.run_charts), args.dashboard_scroll))
    (args.out / "mlflow_ui.log").unlink(missing_ok=True)
    sizes = {name: shrink_png(Path(path), args.max_kb * 1000) for name, path in shots.items()}
    record = {"target": asdict(target), "checks": checks, "bytes": sizes}
    (args.out / "shots.json").write_text(json.dumps(record, indent=2) + "\n")
    for name, size in sizes.items():
        print(f"{args.out / (name + '.png')}: {size / 1000:.0f} kB")
    failed = [name for name, ok in checks.items() if not ok]
    if failed:
        print(f"The runs table did not show: {', '.join(failed)} (see {args.out / 'runs_table.png'})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
