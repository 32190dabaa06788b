"""The installable package: `pip install .` gives vae_core, dashboard and pages, and a `vampviz`
command whose `dashboard` subcommand starts the app."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.request
import zipfile

import pytest

from tests.page_helpers import ROOT
from tests.ports import free_port
from vae_core import cli


def test_dashboard_command_runs_the_app_with_the_extra_folder(tmp_path):
    command = cli.dashboard_command(tmp_path, port=8600)
    assert command[1:4] == ["-m", "streamlit", "run"] and command[4] == str(ROOT / "dashboard" / "server.py")
    assert command[-2:] == ["--checkpoints", str(tmp_path.resolve())] and "8600" in command


def test_dashboard_refuses_a_missing_folder_in_one_line(tmp_path, capsys):
    assert cli.main(["dashboard", "--checkpoints", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --checkpoints") and "\n" not in err


@pytest.mark.slow
def test_the_dashboard_subcommand_serves_the_app(tmp_path):
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "vae_core", "dashboard", "--port", str(port),
                               "--checkpoints", str(tmp_path), "--headless"], cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as answer:
                    assert answer.read() == b"ok"
                    return
            except OSError:
                time.sleep(0.5)
        pytest.fail("the dashboard did not answer within 60 s")
    finally:
        server.terminate()
        server.wait(20)


@pytest.mark.slow
def test_the_wheel_holds_the_library_the_app_its_pages_and_the_command(tmp_path):
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info beside the sources
    for name in ("vae_core", "dashboard", "pages"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "requirements.txt", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(source)], check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("vampviz-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"vae_core/cli.py", "vae_core/data/registry.py", "dashboard/app.py", "dashboard/server.py", "dashboard/warmup.py",
            "pages/models.py"} <= names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "vampviz = vae_core.cli:console" in zipfile.ZipFile(wheel).read(entry_points).decode()
    requires = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "Requires-Dist: torch==2.13.0" in requires  # the exact pins of requirements.txt
