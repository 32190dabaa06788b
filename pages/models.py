"""Models: the selected checkpoint's metrics and its prior's images, then every checkpoint found."""

import streamlit as st

from dashboard import gallery
from dashboard.catalog import summary_row
from dashboard.state import current_entry, device, entries
from dashboard.views import component_images, decodes_in_one_pass, show_grid
from vae_core.errors import VampvizError
from vae_core.paper import reported_log_likelihood
from vae_core.data import DATASETS

SHOWN_COMPONENTS, COMPONENT_COLUMNS, COMPONENT_HEIGHT = 64, 16, 56  # a 16 x 4 strip of 56-pixel-tall images

st.title("📋 Models")
st.markdown(
    "**vampviz** explores variational auto-encoders (VAEs) trained with different priors p(z), "
    "following Tomczak & Welling, *VAE with a VampPrior* (2018). The standard prior is N(0, I); "
    "the **VampPrior** is a mixture of the encoder's own posteriors q(z | u_k) at K learned "
    "*pseudo-inputs* u_k, so the prior adapts to where the encoder actually puts the data. "
    "First the checkpoint picked in the sidebar, then every checkpoint found, one table per dataset.")


def selected_checkpoint(entry) -> None:
    """The picked checkpoint: its test metrics and, for a mixture prior, its component images."""
    info, config = entry.info, entry.info.config
    st.header(entry.label)
    if info.metrics:
        tiles = gallery.metric_tiles(info.metrics, info.epochs, reported_log_likelihood(config))
        for start in range(0, len(tiles), 4):
            for column, (label, value, help_text) in zip(st.columns(4), tiles[start : start + 4]):
                column.metric(label, value, help=help_text)
    else:
        st.info(f"No test metrics yet: run `python -m vae_core evaluate {entry.path}` to compute them.")
    if config.has_components:  # what the prior is made of, at a glance
        try:
            prior = config.prior_class  # what its components are; the model itself is not needed for a glance
            # decoded means from an autoregressive p(x|z) would take K draws of a pass per pixel: not for a glance
            quick = prior.images_are_inputs or decodes_in_one_pass(entry.path, device())
            images = component_images(entry.path, device()) if quick else None
            if not quick:
                st.caption(f"The prior's {prior.component_name}s are not decoded here: this model's p(x|z) draws "
                           "each pixel in turn, one network pass each. The Pseudo-inputs page shows them.")
        except VampvizError as error:
            st.error(f"{entry.path.name} cannot be loaded: {error}")
            images = None
        if images is not None:
            shown = images[:SHOWN_COMPONENTS]
            what = f"{prior.component_name}s {prior.component_symbol}"
            what += "" if prior.images_are_inputs else ", decoded"
            st.subheader(f"The prior's {len(images)} {what}")
            show_grid(gallery.grid(shown, min(COMPONENT_COLUMNS, len(shown)),
                                   gallery.display_scale(config.input_shape, COMPONENT_HEIGHT)),
                      f"{entry.path.name}-prior-images")
            st.caption(f"The first {len(shown)} of {len(images)}, in the prior's own order. The **Pseudo-inputs** "
                       "page orders them by the share of the test set each explains, beside their reconstructions "
                       "and nearest training images.")
    st.caption("Its training curves (loss, reconstruction and KL per epoch, with the KL warm-up) are on the "
               "**Training history** page, and its active units over training on the **Active units** page.")


selected = current_entry()
if selected is not None:
    selected_checkpoint(selected)

st.header("Every checkpoint, by dataset")
table, broken, pending = gallery.models_table([summary_row(e) for e in entries()])
if table.empty:
    st.warning("No readable checkpoints found. Train one with `python -m vae_core train ... --out DIR` "
               "and add its folder in the sidebar.")
else:
    st.markdown(
        "Each row is one trained checkpoint. **Test LL** is the importance-sampled log-likelihood log p(x) in "
        "nats (higher, i.e. closer to 0, is better), **paper LL** the paper's figure for the same model and prior "
        "where one is quoted (its models trained up to 2,000 epochs); **ELBO** is the lower bound the model was "
        "trained on; "
        "**active units** counts latent dimensions the model really uses. Compare rows that differ only in the "
        "prior: the VampPrior should reach a higher test LL than the standard prior and keep more units active "
        "(the paper reports that the standard prior switches more of them off over long training; the column "
        "shows how many these checkpoints keep).")
    for dataset, group in gallery.tables_by_dataset(table, selected and selected.info.config.dataset).items():
        st.subheader(DATASETS[dataset].description if dataset in DATASETS else dataset)
        st.dataframe(group, hide_index=True, width="stretch", placeholder="—", column_config={
            "test LL": st.column_config.NumberColumn(format="%.2f", help="log p(x) on the test set, nats"),
            "paper LL": st.column_config.NumberColumn(format="%.2f", help="the paper's Table 2 figure for this "
                                                      "model and prior, where a public source quotes it"),
            "ELBO": st.column_config.NumberColumn(format="%.2f", help="evidence lower bound on the test set, nats"),
            "K": st.column_config.NumberColumn(help="pseudo-inputs or mixture components"),
        })
for name, error in broken:
    st.error(f"**{name}** could not be read: {error}")
for name, state in pending:
    st.info(f"**{name}** is {state}.")
