"""Training history: a checkpoint's training curves and, for a run trained with snapshots, a replay of its epochs."""

import time

import streamlit as st

from dashboard import gallery, replay
from dashboard.loaders import snapshot
from dashboard.state import entries, figure_style, require_entry
from dashboard.views import show_grid
from vae_core.snapshots import list_snapshots

entry = require_entry()
st.title("📈 Training history")
st.markdown(
    "How did this model get where it is? The **training curves** are per-epoch averages on the training and "
    "validation sets; the dotted grey line (right axis) is the KL weight β, which warms up from 0 to 1, so the "
    "loss and the KL change shape while it rises (the reconstruction improves first, and the KL rises as the "
    "codes spread out). Training stops early when the validation loss stops improving; the saved weights are "
    "the best epoch's. A run trained with **snapshots** saved, every few epochs, the prior's images (a "
    "VampPrior's **pseudo-inputs** u_k, or a mixture's means pushed through the decoder) and **samples** decoded "
    "from the **same fixed noise** at every snapshot, so the only thing that changes from one epoch to the next "
    "is what the model has learned. Move the slider and watch the pseudo-inputs change (randomly initialised "
    "ones need not come to look like digits: the encoder only has to map them to the right codes) while the "
    "samples sharpen; each component keeps its place in the grid, and a red dashed line marks the epoch on "
    "the curves.")


def curves(history: list[dict], epoch: int | None = None, key: str = "") -> None:
    """The loss, reconstruction and KL curves side by side, with a marker at `epoch` if given."""
    if not history:
        st.info("This checkpoint has no history.json, so there are no training curves to show.")
        return
    for column, quantity in zip(st.columns(3), gallery.CURVES):
        column.plotly_chart(figure_style(replay.curve_with_marker(history, quantity, epoch)), width="stretch",
                            key=f"curve-{quantity}-{key}")


snapshots = dict(list_snapshots(entry.path))
if not snapshots:  # its curves, then the replay of another checkpoint, one that has snapshots
    st.subheader(f"Training curves of {entry.path.name}")
    curves(entry.info.history, key="selected")
    HOW = ("Train a model on the **Train** page (snapshots are on by default there), or from the command line "
           "with `python -m vae_core train ... --snapshot-every 5`.")
    with_snapshots = {str(e.path): e for e in entries() if e.ready and list_snapshots(e.path)}
    if not with_snapshots:
        st.info(f"**{entry.path.name}** was trained without snapshots, so there is no replay of its epochs. {HOW}")
        st.stop()
    st.subheader("Replay of a checkpoint trained with snapshots")
    st.info(f"**{entry.path.name}** was trained without snapshots, so there is no replay of its epochs; below is "
            f"one of a checkpoint that has them. {HOW}")
    entry = with_snapshots[st.selectbox("Checkpoint to replay", list(with_snapshots), key="replay_checkpoint",
                                        format_func=lambda p: with_snapshots[p].path.name)]
    snapshots = dict(list_snapshots(entry.path))

epochs = list(snapshots)
top = st.container()
one, two = st.columns([4, 1])
epoch = one.select_slider("Epoch", options=epochs, value=epochs[-1], key=f"replay-epoch-{entry.path}",
                          help="Only the epochs with a snapshot can be chosen")
play = two.button("▶️ Play from the start", help="Steps through every snapshot, about three a second")
view = st.empty()


def show(epoch: int, playing: bool = False) -> None:
    """The epoch's images and the curves with the marker, drawn into the `view` placeholder (while
    playing without download buttons, whose keys must be unique in a run)."""
    shot = snapshot(snapshots[epoch])
    put = (lambda image, name, container: container.image(image)) if playing else show_grid
    with view.container():
        left, right = st.columns(2)
        title = replay.heads_title(shot)
        stem = f"{entry.path.name}-epoch-{epoch}"
        if title:
            left.markdown(f"**Epoch {epoch}: {title}**, in component order")
            image = replay.heads_grid(shot)
            put(image, f"{stem}-prior", container=left)
        else:
            left.info("A standard normal prior has no pseudo-inputs or components to show; the samples "
                      "on the right still show how the decoder learns.")
        right.markdown(f"**Epoch {epoch}: samples** from the fixed noise")
        image = replay.samples_grid(shot)
        put(image, f"{stem}-samples", container=right)
        curves(entry.info.history, epoch, key=f"replay-{epoch}-{playing}")


if play:
    for step in epochs:
        show(step, playing=True)
        time.sleep(0.3)
show(epoch)
top.caption(f"{len(epochs)} snapshots, epochs {epochs[0]} to {epochs[-1]} of {entry.info.epochs} trained.")
