"""dashboard/server.py: the app served with its first page's imports warmed in a thread."""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from pathlib import Path

from streamlit.web.server.app_discovery import discover_asgi_app

from dashboard import warmup

ROOT = Path(__file__).resolve().parent.parent


def test_warm_imports_go_in_order_and_stop_quietly_at_a_failure():
    assert warmup.warm_imports(("json", "csv")) == ["json", "csv"]
    assert warmup.warm_imports(("json", "vampviz_no_such_module", "csv")) == ["json"]


def test_the_lifespan_starts_the_imports_in_a_daemon_thread(monkeypatch):
    ran_in = []
    monkeypatch.setattr(warmup, "warm_imports", lambda: ran_in.append(threading.current_thread()))

    async def serve():
        async with warmup.lifespan(None):
            pass

    asyncio.run(serve())
    for _ in range(100):
        if ran_in:
            break
        threading.Event().wait(0.05)
    assert len(ran_in) == 1 and ran_in[0].name == warmup.THREAD_NAME and ran_in[0].daemon
    assert ran_in[0] is not threading.main_thread()


def test_streamlit_run_finds_the_server_app_and_its_modules_exist():
    found = discover_asgi_app(ROOT / "dashboard" / "server.py")  # parsed, not executed
    assert found.is_asgi_app and found.app_name == "app"
    assert "st.App(\"app.py\"" in (ROOT / "dashboard" / "server.py").read_text()
    for name in warmup.WARM_MODULES:
        assert name.split(".")[0] in ("streamlit", "torch", "pandas", "plotly", "dashboard")
        assert importlib.util.find_spec(name) is not None, name
        if name.startswith("dashboard."):
            assert (ROOT / (name.replace(".", "/") + ".py")).is_file(), name


def test_after_the_warm_up_a_first_model_check_imports_nothing_new():
    """The meta-device build that checks a checkpoint's weights imports nothing that the warm-up
    has not imported (what it imports costs seconds: run in a fresh process)."""
    code = ("import sys; from dashboard import warmup; warmup.warm_imports(); warmup.warm_model_check(); "
            "before = set(sys.modules); "
            "from vae_core import checkpoint; "
            "checkpoint.expected_tensors(checkpoint.read_config('checkpoints/digits-vae-vampprior')[0]); "
            "new = sorted(m for m in set(sys.modules) - before if m.startswith(('torch', 'sympy'))); print(new)")
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout[-2000:]


def test_the_model_check_starts_once_per_process(monkeypatch):
    ran = []
    monkeypatch.setattr(warmup, "warm_model_check", lambda: ran.append(threading.current_thread().name))
    monkeypatch.setattr(warmup, "_model_check", threading.Lock())
    for _ in range(3):  # every page run calls it
        warmup.start_model_check()
    for thread in threading.enumerate():
        if thread.name == warmup.MODEL_CHECK_THREAD:
            thread.join(10)
    assert ran == [warmup.MODEL_CHECK_THREAD]
