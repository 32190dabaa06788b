"""Training replay: step through the epochs of a run trained with snapshots."""

import time

import streamlit as st

from dashboard import gallery, replay
from dashboard.loaders import snapshot
from dashboard.state import entries, require_entry
from dashboard.views import show_grid
from vae_core.snapshots import list_snapshots

entry = require_entry()
st.title("⏯️ Training replay")
st.markdown(
    "How did this model get where it is? During training, a **snapshot** was saved every few epochs: the "
    "prior's images (a VampPrior's **pseudo-inputs** u_k, or a mixture's means pushed through the decoder) "
    "and **samples** decoded from the **same fixed noise** at every snapshot, so the only thing that changes "
    "from one epoch to the next is what the model has learned. Move the slider and watch the pseudo-inputs "
    "change (randomly initialised ones need not come to look like digits: the encoder only has to map "
    "them to the right codes) while the samples sharpen; each component keeps its "
    "place in the grid. The red dashed line marks the chosen epoch on the training curves: during the KL "
    "warm-up (β < 1) the reconstruction improves first, and the KL rises as the codes spread out.")

snapshots = dict(list_snapshots(entry.path))
if not snapshots:  # replay another checkpoint, one that has snapshots, rather than show nothing
    HOW = ("Train a model on the **Train** page (snapshots are on by default there), or from the command line "
           "with `python -m vae_core train ... --snapshot-every 5`.")
    with_snapshots = {str(e.path): e for e in entries() if e.ready and list_snapshots(e.path)}
    if not with_snapshots:
        st.info(f"**{entry.path.name}** was trained without snapshots, so there is nothing to replay. {HOW}")
        st.stop()
    st.info(f"**{entry.path.name}** was trained without snapshots; below is a checkpoint that has them. {HOW}")
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
        history = entry.info.history
        if history:
            for column, quantity in zip(st.columns(3), gallery.CURVES):
                column.plotly_chart(replay.curve_with_marker(history, quantity, epoch), width="stretch",
                                    key=f"replay-{quantity}-{epoch}-{playing}")


if play:
    for step in epochs:
        show(step, playing=True)
        time.sleep(0.3)
show(epoch)
top.caption(f"{len(epochs)} snapshots, epochs {epochs[0]} to {epochs[-1]} of {entry.info.epochs} trained.")
