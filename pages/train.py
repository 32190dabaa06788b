"""Train: start a run in the background, watch it live, stop it, resume it."""

import streamlit as st

from dashboard import gallery, jobs, replay, train_form
from dashboard.catalog import model_title, runs_dir
from dashboard.loaders import available_devices, snapshot
from dashboard.state import device, entries
from dashboard.views import show_grid
from vae_core.data import DATASETS
from vae_core.errors import VampvizError
from vae_core.models import MODELS
from vae_core.networks import ARCHITECTURES
from vae_core.pixelcnn import PIXEL_MODELS
from vae_core.priors import PRIORS
from vae_core.snapshots import list_snapshots
from vae_core.train import TrainConfig

st.title("🏋️ Train")
st.markdown(
    "Train a new VAE here and watch it learn. Each **epoch** is one pass over the training images; "
    "the **loss** is the negative ELBO, −(reconstruction − β·KL): the **reconstruction** term says how "
    "well the decoder redraws an image from its code, the **KL** term how far the encoder's codes are "
    "from the prior. During the **KL warm-up** β rises from 0 to 1, so the model first learns to "
    "reconstruct and only then is pulled towards the prior. With a VampPrior, watch the **pseudo-inputs** "
    "u_k and their reconstructions: the prior is the encoder's own posterior at those images, so what "
    "matters is where the encoder maps them, not whether they look like digits (on 8×8 digits randomly "
    "initialised ones stay noisy while their reconstructions become digits). Training runs in the background: you can switch pages "
    "and come back, and the finished model appears in the sidebar's checkpoint list.")

root = runs_dir()
SESSION_KEY = "train_job"
panel = st.container()  # the followed job's progress, filled last (after a submitted form has started it)


def start(model_config, train_config, out, resume=False) -> bool:
    """Start a job and follow it in this session; whether it started (errors: one line on the page)."""
    try:
        status = jobs.REGISTRY.start(model_config, train_config, out, resume=resume, threads=jobs.default_threads())
    except jobs.JobAlreadyRunning as running:
        st.warning(str(running))
        st.session_state[SESSION_KEY] = str(running.status.out)
        return False
    except (VampvizError, ValueError) as error:
        st.error(str(error))
        return False
    st.session_state[SESSION_KEY] = str(status.out)
    return True


def resume(out, epochs: int) -> bool:
    """Continue the run in `out` from its last epoch up to `epochs`, with its saved settings."""
    try:
        return start(*train_form.saved_configs(out, epochs), out, resume=True)
    except (VampvizError, ValueError) as error:
        st.error(str(error))
        return False


# A tab that follows no job yet shows one already running in this server (started from another tab).
if st.session_state.get(SESSION_KEY) is None:
    running = [s for s in jobs.REGISTRY.jobs() if s.active]
    if running:
        st.session_state[SESSION_KEY] = str(running[0].out)
        panel.info(f"A job is already training into `{running[0].out}`; showing its progress.")

datasets = [name for name, spec in DATASETS.items() if spec.available()]
new_run = st.expander("⚙️ New run", expanded=st.session_state.get(SESSION_KEY) is None)
with new_run.form("train-form"):
    one, two, three = st.columns(3)
    dataset = one.selectbox("Dataset", datasets, key="train-dataset",
                            help="Datasets whose files are present (`python -m vae_core download NAME` fetches others)")
    model = two.selectbox("Model", list(MODELS), key="train-model",
                          help="vae: one latent layer z; hvae: two layers z1, z2 (the prior lives on z2)")
    prior = three.selectbox("Prior", list(PRIORS), index=list(PRIORS).index("vampprior"), key="train-prior",
                            help="standard N(0, I); mog: K learned Gaussians; vampprior: K learned "
                                 "pseudo-inputs; vampprior-data: pseudo-inputs started at training images")
    one, two, three = st.columns(3)
    components = one.number_input("K (pseudo-inputs / components)", 1, 1000, 50, key="train-components",
                                  help="Ignored by the standard prior")
    latent = two.number_input("Latent size", 1, 200, 20, key="train-latent",
                              help="Dimensions of z (of each layer for the HVAE)")
    hidden = three.number_input("Hidden units", 8, 1024, 128, key="train-hidden",
                                help="Width of the encoder and decoder layers")
    one, two = st.columns(2)
    architecture = one.selectbox("Networks", list(ARCHITECTURES), key="train-architecture",
                                 help="mlp: gated dense layers; conv: the paper's gated convolutional "
                                      "encoder and decoder (convHVAE with the hvae model), several times "
                                      "slower on a CPU")
    pixel_model = two.selectbox("Pixel model", list(PIXEL_MODELS), key="train-pixel-model",
                                help="independent: p(x|z) factorises over the pixels; pixelcnn: an "
                                     "autoregressive PixelCNN over p(x|z) (PixelHVAE with hvae and conv): "
                                     "its samples take a pass per pixel")
    one, two, three = st.columns(3)
    epochs = one.number_input("Epochs", 1, 10000, 40, key="train-epochs")
    warmup = two.number_input("KL warm-up (epochs)", 0, 10000, 10, key="train-warmup",
                              help="β grows linearly from 1/warm-up to 1 over these epochs")
    every = three.number_input("Snapshot every (epochs)", 0, 1000, 2, key="train-snapshot-every",
                               help="Saves pseudo-inputs and samples for the live view and the Training history "
                                    "page; 0: never")
    one, two = st.columns([1, 2])
    devices = available_devices()
    train_device = one.selectbox("Device", devices, index=devices.index(device()) if device() in devices else 0,
                                 key="train-device")
    name = two.text_input("Output folder name", key="train-name",
                          placeholder="automatic, e.g. digits-vae-vampprior-K50-z20",
                          help=f"Created under {root} (set $VAMPVIZ_CHECKPOINTS to change it)")
    submitted = st.form_submit_button("▶️ Start training", type="primary")

if submitted:
    try:  # messages go under the form, where the eye is
        config = train_form.make_model_config(dataset, model, prior, int(components), int(latent), int(hidden),
                                              architecture, pixel_model)
        out = root / train_form.check_folder_name(name) if name.strip() else train_form.unique_folder(root, train_form.run_name(config))
        start(config, TrainConfig(epochs=int(epochs), warmup=int(warmup), device=train_device,
                                  snapshot_every=int(every)), out)
    except (VampvizError, ValueError) as error:
        new_run.error(str(error))

with st.expander("⏯️ Resume an earlier run"):
    idle = [p for p in train_form.resumable_runs(root) if not getattr(jobs.REGISTRY.status(p), "active", False)]
    if not idle:
        st.caption(f"No stopped runs under {root} (a run keeps its resume state in last.safetensors).")
    else:
        one, two, three = st.columns([3, 1, 1], vertical_alignment="bottom")
        chosen = one.selectbox("Run", idle, format_func=lambda p: p.name)
        try:
            done, planned = train_form.trained_epochs(chosen), train_form.saved_configs(chosen)[1].epochs
        except (VampvizError, ValueError) as error:
            st.error(str(error))
        else:
            until = two.number_input("Train until epoch", done + 1, 100000, planned if planned > done else done + 10,
                                     key="resume-until")
            if three.button("▶️ Resume", key="resume-earlier"):
                resume(chosen, int(until))


def select_checkpoint(out) -> None:
    """Make the sidebar pick the checkpoint in `out` (its catalog spells paths its own way)."""
    found = [e for e in entries() if e.ready and e.path.resolve() == out]
    if found:
        st.session_state["checkpoint"] = str(found[0].path)


def job_panel(out: str, polling: bool) -> None:
    """Progress, curves and the latest snapshot of the job training into `out`."""
    status = jobs.REGISTRY.status(out)
    if status is None:
        st.info(f"No job of this server trains into `{out}` (was the server restarted?). Its checkpoint, if any, "
                "is in the sidebar; continue it under **Resume an earlier run** below.")
        return
    if polling and not status.active:
        st.rerun()  # it just ended: a full rerun stops the polling and re-scans the sidebar's model list
    config = status.model_config
    st.subheader(f"Run `{status.out.name}`")
    st.caption(f"{config.dataset} · {model_title(config)} · {config.prior}"
               f"{f', K={config.components}' if config.has_components else ''} · z={config.latent_dim} · "
               f"{status.out}")
    st.progress(status.fraction, text=train_form.progress_text(status))
    if status.state == "failed":
        st.error(status.error)
    elif status.state in ("finished", "stopped"):
        if status.error:
            st.warning(status.error)
        st.success(f"The checkpoint is in `{status.out}` and listed in the sidebar. "
                   + ("Resume it below to train further." if status.state == "stopped" else ""))
    if status.state == "evaluating":
        st.button("⏭️ Skip the evaluation", on_click=jobs.REGISTRY.stop, args=(out,), key="stop-job",
                  help="The checkpoint is complete; `python -m vae_core evaluate` can compute its metrics later")
    elif status.active:
        st.button("⏹️ Stop after this epoch", on_click=jobs.REGISTRY.stop, args=(out,), key="stop-job",
                  disabled=status.state == "stopping", help="Checkpoints are kept; you can resume later")
    elif status.resumable:
        one, two, three = st.columns([1, 1, 2], vertical_alignment="bottom")
        planned = status.train_config.epochs
        until = one.number_input("Train until epoch", status.epoch + 1, 100000,
                                 planned if planned > status.epoch else status.epoch + 10, key="resume-job-until")
        if two.button("▶️ Resume", key="resume-job") and resume(status.out, int(until)):
            st.rerun()  # a full rerun, so the panel polls again
        if three.button("🔎 Explore it", key="explore-job", help="Select it in the sidebar and open the Models page",
                        on_click=select_checkpoint, args=(status.out,)):
            st.switch_page("../pages/models.py")
    if status.history:
        for column, quantity in zip(st.columns(3), gallery.CURVES):
            column.plotly_chart(gallery.training_curve_figure(status.history, quantity), width="stretch",
                                key=f"live-{quantity}")
    snapshots = list_snapshots(status.out)
    if snapshots:
        epoch, path = snapshots[-1]
        shot = snapshot(path)
        left, right = st.columns(2)
        title = replay.heads_title(shot)
        if title:
            left.markdown(f"**Epoch {epoch}: {title}**")
            show_grid(replay.heads_grid(shot), f"{status.out.name}-epoch-{epoch}-prior", container=left)
        right.markdown(f"**Epoch {epoch}: samples** (the same noise at every snapshot)")
        show_grid(replay.samples_grid(shot), f"{status.out.name}-epoch-{epoch}-samples", container=right)
    elif status.train_config.snapshot_every:
        st.caption("Pseudo-inputs and samples appear here after the first epoch.")


def follow() -> None:
    st.session_state[SESSION_KEY] = st.session_state["train-follow"]


tracked = st.session_state.get(SESSION_KEY)
everything = {str(s.out): f"{s.out.name} ({s.state})" for s in jobs.REGISTRY.jobs()}
if len(everything) > 1 and tracked in everything:  # several tabs or runs: pick the one to watch
    st.session_state["train-follow"] = tracked
    panel.selectbox("Jobs of this server", list(everything), format_func=everything.get, key="train-follow",
                    on_change=follow)
if tracked:
    current = jobs.REGISTRY.status(tracked)
    polling = bool(current and current.active)
    with panel:
        st.fragment(job_panel, run_every=1 if polling else None)(tracked, polling)
