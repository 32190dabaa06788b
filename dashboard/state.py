"""The sidebar (checkpoint and device pickers, lecture mode) and what pages read from it."""

from __future__ import annotations

import sys

import streamlit as st

from vae_core.embedded import EvaluationData
from vae_core.errors import VampvizError

from .catalog import Entry, checkpoint_dirs, find_checkpoints
from .loaders import available_devices, evaluation_data, load_model


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


# what the app opens on: the paper's static-MNIST VampPrior VAE, else the small digits one
DEFAULT_CHECKPOINTS = ("mnist-static-vae-vampprior", "digits-vae-vampprior")
LECTURE_KEY = "lecture_mode"
# Streamlit sizes text, headings and widgets in rem, so a larger root font scales the whole page
LECTURE_CSS = """<style>
html { font-size: 21px !important; }
[data-testid="stMain"] h1 { font-size: 3rem !important; }
[data-testid="stMain"] h2 { font-size: 2.1rem !important; }
[data-testid="stMain"] h3 { font-size: 1.6rem !important; }
[data-testid="stCaptionContainer"] { font-size: 0.95rem !important; }
[data-testid="stImage"] img { image-rendering: pixelated; }
</style>"""
SIDEBAR_KEYS = ("device", "user_dir")  # widgets hidden in lecture mode whose values must survive


def lecture_mode() -> bool:
    """Whether the sidebar's lecture-mode toggle is on (bigger text, figures and images; fewer controls)."""
    return bool(st.session_state.get(LECTURE_KEY, False))


def figure_style(fig, lecture: bool | None = None, scale: float = 1.6):
    """Enlarge a Plotly figure's fonts (by `scale`) and height in lecture mode; returns the figure.

    `lecture` defaults to the toggle's state; pass it explicitly to use this outside Streamlit.
    """
    if not (lecture_mode() if lecture is None else lecture):
        return fig
    base = round((fig.layout.font.size or 12) * scale)
    fig.update_layout(font_size=base, title_font_size=round(base * 1.25), legend_font_size=round(base * 0.9),
                      legend_title_font_size=round(base * 0.8), hoverlabel_font_size=round(base * 0.9),
                      height=round((fig.layout.height or 450) * 1.3))
    for update_axes in (fig.update_xaxes, fig.update_yaxes):  # Streamlit's Plotly theme sets these explicitly
        update_axes(title_font_size=base, tickfont_size=round(base * 0.85))
    fig.for_each_annotation(lambda a: a.update(font_size=round((a.font.size or 12) * scale)))  # subplot titles, labels
    return fig


def plotly_chart(fig, **kwargs):
    """st.plotly_chart at full width with `figure_style` applied (use instead of st.plotly_chart)."""
    return st.plotly_chart(figure_style(fig), width=kwargs.pop("width", "stretch"), **kwargs)


def image_scale(scale: int) -> int:
    """A nearest-neighbour upscaling factor, doubled in lecture mode."""
    return scale * 2 if lecture_mode() else scale


def pick_from_url(found: list[Entry]) -> None:
    """`?checkpoint=NAME` in the address picks that checkpoint folder when a session starts, so a slide
    can link to one model's page; an unknown name gets a warning in the sidebar."""
    name = st.query_params.get("checkpoint")
    if not name or st.session_state.get("checkpoint_from_url") == name:
        return
    st.session_state["checkpoint_from_url"] = name  # once: later picks in the sidebar win
    match = next((str(e.path) for e in found if e.path.name == name), None)
    if match:
        st.session_state["checkpoint"] = match
    else:
        st.warning(f"No checkpoint named {name!r} here: showing the default one.")


def render_sidebar() -> None:
    found = [e for e in entries() if e.ready]
    for key in SIDEBAR_KEYS:  # a widget not drawn in a run loses its value: make it plain state
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]
    with st.sidebar:
        st.markdown("### 🧛 vampviz")
        st.toggle("🎓 Lecture mode", key=LECTURE_KEY,
                  help="Bigger text, figures and images for a projector; hides controls that are not needed to show.")
        if lecture_mode():
            st.html(LECTURE_CSS)
        if not found:
            st.warning("No checkpoints found. Train one with `python -m vae_core train ... --out DIR`.")
        else:
            paths = [str(e.path) for e in found]
            default = next((i for name in DEFAULT_CHECKPOINTS for i, e in enumerate(found) if e.path.name == name), 0)
            pick_from_url(found)
            if st.session_state.get("checkpoint") not in paths:
                st.session_state["checkpoint"] = paths[default]
            st.selectbox("Checkpoint", paths, key="checkpoint",
                         format_func=lambda p: next(e.label for e in found if str(e.path) == p))
        if not lecture_mode():
            st.selectbox("Device", available_devices(), key="device",
                         help="auto picks CUDA, then MPS, then the CPU")
            st.text_input("Extra checkpoint folder", key="user_dir", placeholder="/path/to/runs",
                          help="Also set by `-- --checkpoints DIR` or $VAMPVIZ_CHECKPOINTS")


def current_entry() -> Entry | None:
    """The checkpoint picked in the sidebar, or None (pages then show a hint and stop)."""
    path = st.session_state.get("checkpoint")
    return next((e for e in entries() if str(e.path) == path and e.ready), None)


def require_entry() -> Entry:
    """The sidebar's checkpoint with its model loaded; a one-line error (and the page stops) when its
    weights cannot be loaded, so one bad folder never breaks a page."""
    entry = current_entry()
    if entry is None:
        st.info("Pick a checkpoint in the sidebar.")
        st.stop()
    try:
        load_model(entry.path, device())
    except VampvizError as error:
        st.error(f"{entry.path.name} cannot be loaded: {error}")
        st.stop()
    return entry


def require_data(entry: Entry) -> EvaluationData:
    """The checkpoint's evaluation images, with a caption saying which they are; when there are
    none (no dataset files, no embedded sample, or a damaged one) a one-line error and the page stops."""
    try:
        data = evaluation_data(entry.path)
    except VampvizError as error:
        st.error(str(error))
        st.stop()
    st.caption(f"Showing {data.description}.")
    return data


def device() -> str:
    return st.session_state.get("device", "auto")
