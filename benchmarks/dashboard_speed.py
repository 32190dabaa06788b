"""How fast the dashboard starts, renders, switches pages and serves UMAP maps.

    python benchmarks/dashboard_speed.py [--checkpoint DIR] [--with-datasets] [--no-umap] [--repeats N]

The checkpoint defaults to the one the app opens on (checkpoints/mnist-static-vae-vampprior, else
digits-vae-vampprior). Like a fresh clone, the app sees no dataset files (an empty
$VAMPVIZ_DATA_DIR: the pages serve the checkpoint's embedded sample) unless --with-datasets.

Measures, each in a fresh process so no cache is warm by accident:
  1. `streamlit run dashboard/server.py` (what `vampviz dashboard` runs: the app, with its imports
     warmed in a thread while the browser loads) start to /_stcore/health answering "ok";
  2. the first page with cold caches: in Chromium (Playwright) when /usr/bin/chromium is there,
     for server.py and for plain `streamlit run dashboard/app.py`, alternately, `--repeats` times
     each (medians; their ratio is this run's own): when its script has finished, when it is drawn
     (no element still a placeholder while its JavaScript loads, every image loaded, every Plotly
     chart drawn: what the user waits for), and drawn again on a reload in the same browser (its
     cache warm, as on a second visit); beside them, the same for a bare Streamlit page holding one
     Plotly chart (the floor Streamlit's frontend and plotly.js set on this machine); and always
     with AppTest (script run to completion);
  3. switching pages with the model loaded, first visit and revisit of each page: in Chromium
     (a click on the page's link in the sidebar until the page is drawn; the targets are judged
     on these) and with AppTest (`switch_page` after a warm run: the script alone);
  4. a UMAP projection of the test set: cold (empty projection and numba caches), cold with
     numba's cache warm, and served from the on-disk projection cache.
Prints a table and rewrites the "Dashboard speed" section of benchmarks/RESULTS.md (between the
<!-- dashboard:start --> and <!-- dashboard:end --> markers; the rest of the file is kept) and
its "dashboard_speed" record in benchmarks/results.json (other records are kept).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- dashboard:start -->", "<!-- dashboard:end -->"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.report_files import RESULTS_JSON, RESULTS_MD, cpu_name, replace_records, replace_section  # noqa: E402

KIND = "dashboard_speed"  # the results.json records this script writes (it replaces its own only)

IDLE = '[data-testid="stApp"][data-test-connection-state="CONNECTED"][data-test-script-state="notRunning"]'
# Drawn: the script is done, no element is still a skeleton waiting for its lazily loaded JavaScript
# (dataframes, Plotly charts, ...), every image has loaded and every Plotly chart has its SVG.
DRAWN = f"""() => !!document.querySelector('{IDLE}')
    && !document.querySelector('[data-testid="stSkeleton"]')
    && [...document.images].every(image => image.complete)
    && [...document.querySelectorAll('[data-testid="stPlotlyChart"]')].every(chart => chart.querySelector('.main-svg'))"""
# The floor under any first page with a figure: Streamlit's frontend plus plotly.js, nothing of vampviz.
BARE_PLOTLY_PAGE = """import plotly.graph_objects as go
import streamlit as st

st.title("One Plotly chart")
st.plotly_chart(go.Figure(go.Scatter(x=[0, 1, 2], y=[0, 2, 1])))
"""
# The floor under a switch to a latent-map page: a bare two-page app whose second page holds one
# WebGL scatter of 3,000 points (a shipped map's test points, pseudo-inputs and prior samples).
BARE_MAP_APP = {
    "app.py": """import streamlit as st

st.navigation([st.Page("title.py", title="Title", default=True), st.Page("map.py", title="Map")]).run()
""",
    "title.py": 'import streamlit as st\n\nst.title("Title")\n',
    "map.py": """import numpy as np
import plotly.graph_objects as go
import streamlit as st

st.title("One WebGL map")
points = np.random.default_rng(0).normal(size=(3000, 2))
st.plotly_chart(go.Figure(go.Scattergl(x=points[:, 0], y=points[:, 1], mode="markers")))
""",
}
CHROMIUM = os.environ.get("VAMPVIZ_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"

# Run in a child process: AppTest timings of the first page, then of page switches.
APPTEST_CHILD = """
import json, sys, time
t0 = time.perf_counter()
from streamlit.testing.v1 import AppTest
at = AppTest.from_file(sys.argv[1], default_timeout=300)
at.session_state["checkpoint"] = sys.argv[2]
at.run()
first = time.perf_counter() - t0
assert not at.exception, [e.value for e in at.exception]
switches = {}
for visit in ("first visit", "revisit"):
    for page in sys.argv[3:]:
        at.switch_page(f"../pages/{page}.py")
        t = time.perf_counter()
        at.run()
        switches.setdefault(page, {})[visit] = time.perf_counter() - t
        assert not at.exception, (page, [e.value for e in at.exception])
print(json.dumps({"first": first, "switches": switches}))
"""

# Run in a child process: one UMAP projection of the checkpoint's test means, timed.
UMAP_CHILD = """
import json, sys, time
t0 = time.perf_counter()
sys.path.insert(0, sys.argv[1])
from dashboard.disk_cache import weights_digest
from dashboard.projections import latent_projection
from vae_core import checkpoint, embedded
from vae_core.evaluate import posterior_means
model = checkpoint.load(sys.argv[2])
layer = model.prior_layer
means = posterior_means(model, embedded.evaluation_data(sys.argv[2]).x_test)[layer]
t = time.perf_counter()
coords, origin = latent_projection(sys.argv[2], model, means, layer, "UMAP", weights_digest(sys.argv[2]))
print(json.dumps({"projection": time.perf_counter() - t, "process": time.perf_counter() - t0,
                  "from_disk": origin != "computed", "origin": origin, "points": len(coords["points"])}))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child(code: str, args: list[str], env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


LAUNCHES = {"server.py": "dashboard/server.py", "app.py": "dashboard/app.py"}  # what `vampviz dashboard` runs first


def server_timings(env: dict, script: str, cwd: Path = ROOT, switches: list[tuple[str, str, str]] = ()) -> dict:
    """Start a server on `script`; time its health check and (with Chromium) the first page in a
    fresh browser: its script finished, the page drawn, and drawn again after a reload; then, for
    each of `switches` ((page, its link in the sidebar, its title) as `page_titles` gives them), a
    click on its link until it is drawn, first visit and revisit."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    start = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", script, "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false"],
        cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    result: dict = {}
    try:
        while time.perf_counter() - start < 120:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                    result["health"] = time.perf_counter() - start
                    break
            except OSError:
                time.sleep(0.05)
        if "health" in result and Path(CHROMIUM).exists():
            try:
                from playwright.sync_api import sync_playwright
            except ImportError:
                return result
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                t = time.perf_counter()
                page.goto(url)
                page.wait_for_selector("h1", timeout=300_000)  # the page's title: the script is running
                page.wait_for_selector(IDLE, timeout=300_000)  # and has finished
                result["browser_script_done"] = time.perf_counter() - t
                page.wait_for_function(DRAWN, timeout=300_000, polling=50)
                result["browser_first_page"] = time.perf_counter() - t
                t = time.perf_counter()
                page.reload()
                page.wait_for_function(DRAWN, timeout=300_000, polling=50)
                result["browser_reload"] = time.perf_counter() - t
                if switches:
                    result["browser_switches"] = browser_switches(page, switches)
                browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    return result


SHOWS_TITLE = "title => [...document.querySelectorAll('h1')].some(h => h.textContent.includes(title))"


def browser_switches(page, switches: list[tuple[str, str, str]]) -> dict[str, dict[str, float]]:
    """{page: {"first visit": s, "revisit": s}}: each sidebar link clicked in turn, twice round,
    timed until the page shows its title and is drawn."""
    found: dict[str, dict[str, float]] = {}
    for visit in ("first visit", "revisit"):
        for name, link, title in switches:
            t = time.perf_counter()
            page.locator('[data-testid="stSidebarNav"] a', has_text=link).first.click()
            page.wait_for_function(SHOWS_TITLE, arg=title, timeout=300_000, polling=50)
            page.wait_for_function(DRAWN, timeout=300_000, polling=50)
            found.setdefault(name, {})[visit] = time.perf_counter() - t
    return found


def bare_page_timings(env: dict, repeats: int) -> dict:
    """server_timings of BARE_PLOTLY_PAGE, `repeats` times: medians and the runs."""
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "bare.py").write_text(BARE_PLOTLY_PAGE)
        return medians([server_timings(env, "bare.py", Path(folder)) for _ in range(repeats)])


def bare_map_timings(env: dict) -> dict | None:
    """{"first visit": s, "revisit": s} of a switch to BARE_MAP_APP's map page in Chromium (None without one)."""
    with tempfile.TemporaryDirectory() as folder:
        for name, text in BARE_MAP_APP.items():
            (Path(folder) / name).write_text(text)
        timings = server_timings(env, "app.py", Path(folder), switches=[("map", "Map", "One WebGL map")])
    return timings.get("browser_switches", {}).get("map")


BROWSER_KEYS = ("health", "browser_script_done", "browser_first_page", "browser_reload")


def medians(timings: list[dict]) -> dict:
    """{key: median over `timings`} for each key every run measured, and the runs themselves."""
    found = {key: statistics.median(t[key] for t in timings) for key in BROWSER_KEYS if all(key in t for t in timings)}
    switches = next((t["browser_switches"] for t in timings if "browser_switches" in t), None)
    return found | ({"browser_switches": switches} if switches else {}) | {"runs": timings}


def launch_timings(env: dict, repeats: int, switches: list[tuple[str, str, str]] = ()) -> dict[str, dict]:
    """server_timings of each of LAUNCHES, alternately `repeats` times: {name: medians | {"runs": [...]}};
    the first launch of server.py also times `switches` in the browser."""
    runs: dict[str, list[dict]] = {name: [] for name in LAUNCHES}
    for repeat in range(repeats):
        for name, script in LAUNCHES.items():
            runs[name].append(server_timings(env, script, switches=switches if (repeat, name) == (0, "server.py") else ()))
    return {name: medians(timings) for name, timings in runs.items()}


def umap_timings(env: dict, checkpoint: str) -> dict:
    with tempfile.TemporaryDirectory() as cache:
        env = env | {"VAMPVIZ_CACHE_DIR": cache, "NUMBA_CACHE_DIR": str(Path(cache) / "numba")}
        cold = child(UMAP_CHILD, [str(ROOT), checkpoint], env)  # nothing cached: numba compiles too
        if cold["origin"] == "checkpoint":  # shipped with its maps: no fit, no disk cache to time
            print(f"  {Path(checkpoint).name} carries its UMAP map: nothing to fit or cache", flush=True)
            return None
        shutil.rmtree(Path(cache) / "projections")
        warm_numba = child(UMAP_CHILD, [str(ROOT), checkpoint], env)  # numba cached, projection not
        cached = child(UMAP_CHILD, [str(ROOT), checkpoint], env)  # projection on disk
    assert not cold["from_disk"] and not warm_numba["from_disk"] and cached["from_disk"]
    return {"cold": cold, "warm_numba": warm_numba, "cached": cached}


def page_titles() -> list[tuple[str, str, str]]:
    """(page, its link text in the sidebar, the title its script writes) of each page app.py registers,
    in its order (the first is the default page)."""
    found = []
    for name, link in re.findall(r'st\.Page\("\.\./pages/(\w+)\.py", title="([^"]+)"',
                                 (ROOT / "dashboard" / "app.py").read_text()):
        title = re.search(r'st\.title\("([^"]+)"\)', (ROOT / "pages" / f"{name}.py").read_text())
        found.append((name, link, title.group(1) if title else link))
    return found


BROWSER_ROWS = (("browser_script_done", "script finished"), ("browser_first_page", "drawn"),
                ("browser_reload", "drawn again on a reload"))


def runs_of(timings: dict, key: str) -> str:
    """"median of 4.11, 7.28" for a median of several runs; "one run" for one."""
    each = [f"{t[key]:.2f}" for t in timings["runs"]]
    return f"median of {', '.join(each)}" if len(each) > 1 else "one run"


def machine() -> str:
    import torch

    return (f"{cpu_name()}, {os.cpu_count()} CPU cores, no GPU used, "
            f"Python {platform.python_version()}, torch {torch.__version__}, {platform.system()} {platform.release()}")


def table(rows: list[tuple[str, str]]) -> str:
    width = max(len(a) for a, _ in rows)
    lines = [("measurement", "seconds"), ("-" * width, "---"), *rows]
    return "\n".join(f"| {a.ljust(width)} | {b} |" for a, b in lines)


def target_checks(server: dict, apptest: dict) -> list[tuple[str, bool]]:
    """The dashboard's speed targets, each with what this run measured and whether it met it."""
    where = "in Chromium" if "browser_switches" in server else "AppTest"
    switches = server.get("browser_switches", apptest["switches"])  # the browser's, which include drawing
    revisits = {page: t["revisit"] for page, t in switches.items()}
    slowest = max(revisits, key=revisits.get)
    first = server.get("browser_first_page", apptest["first"])
    checks = [(f"first page drawn ≤ 5 s after the server is ready: {first:.2f} s", first <= 5),
              (f"page switch with the model loaded (revisit, {where}) < 1 s: slowest {slowest}, "
               f"{revisits[slowest]:.2f} s", revisits[slowest] < 1)]
    if "latent_space" in switches:
        latent = switches["latent_space"]["first visit"]
        checks.append((f"Latent space with its shipped UMAP, first visit ({where}) < 2 s: {latent:.2f} s",
                       latent < 2))
    return checks


def targets(server: dict, apptest: dict) -> str:
    checks = target_checks(server, apptest)
    return "Targets:\n\n" + "\n".join(f"- {'met' if ok else '**missed**'}: {what}" for what, ok in checks)


def record(checkpoint: str, with_datasets: bool, launches: dict, apptest: dict, umap: dict | None,
           bare: dict | None = None, bare_map: dict | None = None) -> dict:
    """This run as one results.json record (kind "dashboard_speed"), with the machine it ran on."""
    return {
        "kind": KIND, "date": date.today().isoformat(), "machine": machine(), "checkpoint": Path(checkpoint).name,
        "with_datasets": with_datasets, "server": launches, "bare_plotly_page": bare, "bare_map_page": bare_map, "apptest": apptest, "umap": umap,
        "targets": [{"target": what, "met": ok} for what, ok in target_checks(launches["server.py"], apptest)],
    }


def write_section(text: str) -> None:
    replace_section(RESULTS_MD, START, END, f"{START}\n{text}\n{END}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    shipped = [ROOT / "checkpoints" / name for name in ("mnist-static-vae-vampprior", "digits-vae-vampprior")]
    parser.add_argument("--checkpoint", default=str(next((p for p in shipped if p.is_dir()), shipped[-1])))
    parser.add_argument("--with-datasets", action="store_true",
                        help="let the app read $VAMPVIZ_DATA_DIR (default: an empty one, as on a fresh clone)")
    parser.add_argument("--no-umap", action="store_true", help="skip the (slow) UMAP measurements")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    parser.add_argument("--repeats", type=int, default=3, help="browser launches of each script (default 3)")
    args = parser.parse_args()
    checkpoint = str(Path(args.checkpoint).resolve())
    load = os.getloadavg()[0]  # what else was running, for the notes
    with tempfile.TemporaryDirectory() as cache:
        env = os.environ | {"VAMPVIZ_CACHE_DIR": cache, "PYTHONPATH": str(ROOT)}
        if not args.with_datasets:
            (Path(cache) / "no-datasets").mkdir()
            env["VAMPVIZ_DATA_DIR"] = str(Path(cache) / "no-datasets")
        print("server start and first page, server.py and app.py in turn…", flush=True)
        titles = page_titles()
        launches = launch_timings(env, max(1, args.repeats), titles[1:] + titles[:1])
        server = launches["server.py"]
        print("a bare Streamlit page with one Plotly chart…", flush=True)
        bare = bare_page_timings(env, max(1, args.repeats))
        print("a bare two-page app switching to one WebGL map…", flush=True)
        bare_map = bare_map_timings(env)
        print("AppTest first page and page switches…", flush=True)
        order = [name for name, _, _ in titles]
        apptest = child(APPTEST_CHILD, [str(ROOT / "dashboard" / "app.py"), checkpoint, *order[1:], order[0]], env)
        umap = None
        if not args.no_umap:
            print("UMAP cold, with numba cached, and from the disk cache…", flush=True)
            umap = umap_timings(env, checkpoint)

    rows = [("server start → /_stcore/health ok", f"{server.get('health', float('nan')):.2f}")]
    for name, timings in launches.items():
        if "browser_first_page" in timings:
            rows += [(f"`dashboard/{name}`, first page in Chromium: {what} ({runs_of(timings, key)})",
                      f"{timings[key]:.2f}") for key, what in BROWSER_ROWS]
    if "browser_first_page" in bare:
        rows.append((f"a bare Streamlit page with one Plotly chart, drawn ({runs_of(bare, 'browser_first_page')})",
                     f"{bare['browser_first_page']:.2f}"))
    if bare_map:
        rows.append(("switch to a bare page with one 3,000-point WebGL map in Chromium: first visit / revisit",
                     f"{bare_map['first visit']:.2f} / {bare_map['revisit']:.2f}"))
    if all("browser_first_page" in t for t in launches.values()):
        ratio = launches["app.py"]["browser_first_page"] / launches["server.py"]["browser_first_page"]
        rows.append(("first page: app.py's time / server.py's (this run)", f"{ratio:.2f}x"))
    rows.append(("first page, AppTest in a fresh process (imports + cold caches)", f"{apptest['first']:.2f}"))
    for where, switches in (("in Chromium, until drawn", server.get("browser_switches", {})),
                            ("with AppTest, script only", apptest["switches"])):
        rows += [(f"switch to {page} {where}: first visit / revisit",
                  f"{times['first visit']:.2f} / {times['revisit']:.2f}") for page, times in switches.items()]
    if umap:
        rows += [
            ("UMAP projection, nothing cached (numba compiles)", f"{umap['cold']['projection']:.2f}"),
            ("UMAP projection, numba cached, projection not", f"{umap['warm_numba']['projection']:.2f}"),
            ("UMAP projection served from the disk cache", f"{umap['cached']['projection']:.3f}"),
        ]
    text = table(rows) + "\n\n" + targets(server, apptest)
    print("\n" + text)
    if umap:
        ratio = umap["warm_numba"]["projection"] / max(umap["cached"]["projection"], 1e-9)
        print(f"\ndisk cache vs fitting UMAP (numba cached): {ratio:,.0f}x faster")
    if args.no_write:
        return
    notes = (f"## Dashboard speed\n\n`python benchmarks/dashboard_speed.py` on {date.today().isoformat()}, checkpoint "
             f"`{Path(checkpoint).name}`. Machine: {machine()}. The browser figures are medians of the launches listed, the others one run, each from a fresh process; "
             f"the 1-minute load average was {load:.1f} on its {os.cpu_count()} cores when the run started (other jobs "
             "on a shared machine slow every figure), so treat them as rough. The health check answers before any "
             "page script runs (Streamlit runs the script when a browser session connects), so the first page's "
             "time is the one a user waits for. `vampviz dashboard` runs `dashboard/server.py`, which imports "
             "torch and the page modules in a thread as soon as the server is up, while the browser is still "
             "loading Streamlit's frontend; plain `dashboard/app.py` imports them when the first page runs. "
             "A page is *drawn* once its script has finished, no element is still a placeholder while its "
             "JavaScript loads (Streamlit fetches the code of dataframes and Plotly charts when the first one "
             "arrives), every image has loaded and every Plotly chart is drawn; the browser starts with an empty "
             "cache each launch, as on a first visit, and the reload shows a second visit. The bare page (a title "
             "and one Plotly chart, nothing of vampviz) is the floor Streamlit and plotly.js set on this machine, and "
             "the bare WebGL map page the floor under a switch to a latent map. "
             "The first page (Models) draws no Plotly chart, so the browser loads and runs plotly.js (4.7 MB) on "
             "the first visit of a page that has one: the first switch (to Pseudo-inputs) includes it. "
             + ("The app read the dataset files. " if args.with_datasets else
                "The app saw no dataset files (an empty `$VAMPVIZ_DATA_DIR`, as on a fresh clone), so its pages "
                "served the checkpoint's embedded sample. ") + "\n\n" + text)
    if umap:
        notes += (f"\n\nThe on-disk projection cache (`~/.cache/vampviz/projections`, keyed by the weights' sha256) "
                  f"serves a UMAP map {ratio:,.0f}x faster than fitting it again in a fresh process "
                  f"({umap['warm_numba']['projection']:.1f} s → {umap['cached']['projection'] * 1000:.0f} ms; "
                  f"{umap['cached']['points']} test points, with the pseudo-inputs and 500 prior samples "
                  "transformed at fit time).")
    write_section(notes)
    replace_records(RESULTS_JSON, KIND, [record(checkpoint, args.with_datasets, launches, apptest, umap, bare, bare_map)])
    print(f"\nwrote the dashboard section of {RESULTS_MD.relative_to(ROOT)} and its record in "
          f"{RESULTS_JSON.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
