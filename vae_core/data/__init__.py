"""Dataset registry and the paper's datasets.

Every dataset is a `DatasetSpec`: its image shape, input type, default likelihood, the paper's
pseudo-input initialisation, where its files come from, and a loader returning `DatasetSplits`
with images as float32 arrays of shape (N, C, H, W) in [0, 1]. Binary datasets with
`dynamic_binarization` keep grey training images; the trainer draws x ~ Bernoulli(grey) afresh
for every batch, while validation and test sets are binarised once with a fixed seed, as in the paper.

The embedded default `digits` (scikit-learn's 8x8 digits) needs no download. The paper's datasets
(Tomczak & Welling 2018: static and dynamic MNIST, OMNIGLOT, Caltech 101 Silhouettes, Frey Faces;
plus Fashion-MNIST) read files from the data directory (`resolve_data_dir`), one subfolder each:

    <data_dir>/mnist_static/binarized_mnist_static.npz   (or the three Larochelle .amat files)
    <data_dir>/mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz
    <data_dir>/omniglot/chardata.mat                     (or omniglot_raw_105/images_*.npz)
    <data_dir>/caltech101_silhouettes/caltech101_silhouettes_28_split1.mat
    <data_dir>/freyfaces/freyfaces.pkl
    <data_dir>/fashion_mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz

Loading never downloads: a missing file raises a one-line `DatasetError` that says where the file
belongs and how to get it. `download(name, data_dir)` fetches a dataset's files from their public
URLs (https first, each response capped in size), checks each file's checksum and only then moves
it into place.

Dataset files cannot hurt the user: a damaged or forged file (truncated, bit-flipped, a zip bomb,
a header declaring huge sizes, a pickle asking numpy for object arrays) ends in a one-line
`DatasetError` naming it, and `load_dataset` checks every split (float32, finite, in [0, 1], the
spec's shape, not empty) before any of it reaches training.

Modules: `registry` (specs, splits, `load_dataset`), `arrays` (seeded splits, binarisation, pixel
checks), `formats` and `pickles` (file readers), `downloads`, and one module per dataset; adding a
dataset is one new module that calls `register`, imported below.
"""

from ..errors import DatasetError
from .arrays import EVAL_BINARIZATION_SEED, SPLIT_SEED, binarize, split_indices
from .downloads import checksum_ok, download, file_checksum
from .formats import read_amat, read_idx, read_mat, read_npz, save_npz
from .pickles import read_safe_pickle
from .registry import (
    DATASETS,
    DatasetSpec,
    DatasetSplits,
    DownloadPlan,
    RemoteFile,
    get_spec,
    load_dataset,
    register,
    resolve_data_dir,
)

from . import digits, mnist_static, mnist, omniglot, caltech101, freyfaces  # noqa: E402,F401  (they register)

__all__ = [
    "DATASETS", "DatasetError", "DatasetSpec", "DatasetSplits", "DownloadPlan", "EVAL_BINARIZATION_SEED",
    "RemoteFile", "SPLIT_SEED", "binarize", "checksum_ok", "download", "file_checksum", "get_spec",
    "load_dataset", "read_amat", "read_idx", "read_mat", "read_npz", "read_safe_pickle", "register",
    "resolve_data_dir", "save_npz", "split_indices",
]  # fmt: skip
