"""A real browser against a real server: every page renders without an exception box.

Starts `streamlit run dashboard/server.py` (what `vampviz dashboard` runs) on a free loopback port, drives Debian's Chromium with
Playwright (never `playwright install`), and saves a screenshot of each page under
test-artifacts/screenshots/ for a person to look at.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.page_helpers import shipped_paper_checkpoints
from tests.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = os.environ.get("VAMPVIZ_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
PAGES = ["", "pseudo_inputs", "latent_space", "active_units", "prior_vs_posterior", "samples", "compare", "probe",
         "train", "replay"]
NO_FIGURE_PAGES = {"train"}  # a form until a run starts; every other page shows images or Plotly charts
FIGURES = ('[data-testid="stMain"] [data-testid="stImage"], '
           '[data-testid="stMain"] [data-testid="stPlotlyChart"]')
NO_SKELETON = "() => !document.querySelector('[data-testid=\"stSkeleton\"]')"
IDLE = ('[data-testid="stApp"][data-test-connection-state="CONNECTED"]'
        '[data-test-script-state="notRunning"]')
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.browser




@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM}: install Debian's package with `apt-get install -y chromium`")
    pytest.importorskip("playwright.sync_api")
    port = free_port()
    # no dataset files and an empty cache, as on a fresh clone: the pages serve the embedded samples
    env = os.environ | {"NUMBA_CACHE_DIR": str(tmp_path_factory.mktemp("numba")),
                        "VAMPVIZ_DATA_DIR": str(tmp_path_factory.mktemp("no-datasets")),
                        "VAMPVIZ_CACHE_DIR": str(tmp_path_factory.mktemp("cache"))}
    log = tmp_path_factory.mktemp("server") / "streamlit.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "dashboard/server.py", "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail(f"streamlit did not become healthy; log:\n{log.read_text()[-2000:]}")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


# the shipped paper checkpoints, each opened by name in the address on every page that depends on it
PAPER = shipped_paper_checkpoints()
CHECKPOINT_PAGES = [p for p in PAGES if p not in ("", "compare", "train")]


@pytest.mark.parametrize("page_path", PAGES)
def test_page_renders_without_exception(server, browser, page_path):
    check_page(server, browser, page_path)


@pytest.mark.parametrize("page_path", CHECKPOINT_PAGES)
@pytest.mark.parametrize("checkpoint", PAPER)
def test_page_renders_for_every_shipped_paper_checkpoint(server, browser, checkpoint, page_path):
    check_page(server, browser, page_path, checkpoint)


def check_page(server: str, browser, page_path: str, checkpoint: str | None = None) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server}/{page_path}" + (f"?checkpoint={checkpoint}" if checkpoint else ""), timeout=60_000)
    page.wait_for_selector('[data-testid="stMain"] h1', timeout=90_000)  # the page's own content
    page.wait_for_selector(IDLE, timeout=120_000)
    # the script can be done while the browser still draws placeholders (Plotly loads after it)
    page.wait_for_function(NO_SKELETON, timeout=60_000)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    where = f"/{page_path}" + (f" of {checkpoint}" if checkpoint else "")
    page.screenshot(path=str(SCREENSHOTS / f"{(checkpoint + '-') if checkpoint else ''}{page_path or 'models'}.png"),
                    full_page=True)
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, f"{where} shows an exception: {exceptions.first.inner_text()[:500]}"
    if checkpoint:
        errors = page.locator('[data-testid="stAlertContentError"]')
        assert errors.count() == 0, f"{where} shows an error: {errors.first.inner_text()[:300]}"
    if page_path not in NO_FIGURE_PAGES:  # or, for a checkpoint, a note why not (no pseudo-inputs to show)
        explained = checkpoint and page.locator('[data-testid="stAlertContentInfo"]').count() > 0
        assert page.locator(FIGURES).count() > 0 or explained, f"{where} shows no image or chart"
    page.close()


# The pixel position of the test point farthest from every other marker of the latent map (so that
# a click there hits it and nothing else), with the test image it stands for.
ISOLATED_TEST_POINT = """() => {
    const gd = document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
    const layout = gd._fullLayout, box = gd.getBoundingClientRect();
    const pixel = (x, y) => [box.left + layout.xaxis._offset + layout.xaxis.l2p(x),
                             box.top + layout.yaxis._offset + layout.yaxis.l2p(y)];
    const markers = [];
    gd._fullData.filter(t => t.visible === true).forEach(t => t.x.forEach((x, i) => markers.push(
        {at: pixel(x, t.y[i]), test: t.name.startsWith('label') || t.name === 'test images',
         index: t.customdata ? t.customdata[i][0] : null, type: t.type})));
    let best = null;
    for (const m of markers.filter(m => m.test && m.index !== 0)) {
        const gap = Math.min(...markers.filter(o => o !== m).map(o => Math.hypot(o.at[0] - m.at[0], o.at[1] - m.at[1])));
        if (!best || gap > best.gap) best = {...m, gap};
    }
    return best;
}"""


def test_clicking_a_point_on_the_latent_map_shows_its_image(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server}/latent_space", timeout=60_000)
    page.wait_for_selector(IDLE, timeout=120_000)
    page.wait_for_function(NO_SKELETON, timeout=60_000)
    page.wait_for_selector('[data-testid="stPlotlyChart"] .js-plotly-plot', timeout=60_000)
    point = page.evaluate(ISOLATED_TEST_POINT)
    assert point["type"] == "scattergl" and point["gap"] > 3, point  # 3,000 markers: drawn with WebGL
    page.mouse.click(*point["at"])
    caption = page.get_by_text(f"test image #{point['index']} · its reconstruction")
    caption.wait_for(timeout=60_000)
    assert page.locator('[data-testid="stException"]').count() == 0
    page.close()


def test_a_grids_png_download_is_the_image_shown(server, browser):
    """The PNG behind a grid's download button is encoded on the click: it arrives, and it is a PNG."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page.goto(server, timeout=60_000)
    page.wait_for_selector(IDLE, timeout=120_000)
    # Streamlit loads the image element's code lazily: the download button can be drawn before the image
    page.wait_for_function("() => { const image = document.querySelector("
                           "'[data-testid=\"stMain\"] [data-testid=\"stImage\"] img');"
                           " return image && image.complete && image.naturalWidth > 0; }", timeout=60_000)
    with page.expect_download(timeout=60_000) as download:
        page.locator('[data-testid="stDownloadButton"] button').first.click()
    data = Path(download.value.path()).read_bytes()
    assert download.value.suggested_filename.endswith("-prior-images.png") and data.startswith(b"\x89PNG\r\n\x1a\n")
    shown = page.evaluate("() => { const image = document.querySelector('[data-testid=\"stMain\"] [data-testid=\"stImage\"] img');"
                          " return [image.naturalWidth, image.naturalHeight]; }")
    from PIL import Image

    assert list(Image.open(io.BytesIO(data)).size) == shown  # the grid above the button, pixel for pixel in size
    page.close()
