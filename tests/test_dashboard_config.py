"""dashboard/.streamlit/config.toml applies to the dashboard whatever folder it is started from."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

READ_OPTIONS = """
import sys
from streamlit import config
config._main_script_path = sys.argv[1]  # what `streamlit run SCRIPT` sets before reading its config
config.get_config_options(force_reparse=True)
print(*(config.get_option(name) for name in sys.argv[2:]))
"""


def test_the_dashboards_settings_apply_when_started_from_another_folder(tmp_path):
    out = subprocess.run([sys.executable, "-c", READ_OPTIONS, str(ROOT / "dashboard" / "server.py"),
                          "server.fileWatcherType", "theme.base", "browser.gatherUsageStats"],
                         cwd=tmp_path, capture_output=True, text=True, check=True, env=os.environ | {"HOME": str(tmp_path)})  # no ~/.streamlit of the user
    assert out.stdout.split() == ["none", "light", "False"]
