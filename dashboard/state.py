"""The sidebar (checkpoint and device pickers) and what pages read from it."""

from __future__ import annotations

import sys

import streamlit as st

from .catalog import Entry, checkpoint_dirs, find_checkpoints
from .loaders import available_devices


def user_dir_from_argv(argv: list[str] | None = None) -> str | None:
    """`streamlit run dashboard/app.py -- --checkpoints DIR` adds DIR to the searched folders."""
    argv = sys.argv[1:] if argv is None else argv
    if "--checkpoints" in argv:
        index = argv.index("--checkpoints")
        if index + 1 < len(argv):
            return argv[index + 1]
    return None


def entries() -> list[Entry]:
    """All checkpoints found (readable or broken), re-scanned on every run: it is a few stat calls."""
    extra = st.session_state.get("user_dir") or user_dir_from_argv()
    return find_checkpoints(checkpoint_dirs(extra))


def render_sidebar() -> None:
    found = [e for e in entries() if e.info is not None]
    with st.sidebar:
        st.markdown("### 🧛 vampviz")
        if not found:
            st.warning("No checkpoints found. Train one with `python -m vae_core train ... --out DIR`.")
        else:
            paths = [str(e.path) for e in found]
            default = next((i for i, e in enumerate(found) if e.path.name == "digits-vae-vampprior"), 0)
            if st.session_state.get("checkpoint") not in paths:
                st.session_state["checkpoint"] = paths[default]
            st.selectbox("Checkpoint", paths, key="checkpoint",
                         format_func=lambda p: next(e.label for e in found if str(e.path) == p))
        st.selectbox("Device", available_devices(), key="device",
                     help="auto picks CUDA, then MPS, then the CPU")
        st.text_input("Extra checkpoint folder", key="user_dir", placeholder="/path/to/runs",
                      help="Also set by `-- --checkpoints DIR` or $VAMPVIZ_CHECKPOINTS")


def current_entry() -> Entry | None:
    """The checkpoint picked in the sidebar, or None (pages then show a hint and stop)."""
    path = st.session_state.get("checkpoint")
    return next((e for e in entries() if str(e.path) == path and e.info is not None), None)


def require_entry() -> Entry:
    entry = current_entry()
    if entry is None:
        st.info("Pick a checkpoint in the sidebar.")
        st.stop()
    return entry


def device() -> str:
    return st.session_state.get("device", "auto")
