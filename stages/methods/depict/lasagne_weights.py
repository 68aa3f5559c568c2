"""The DEPICT authors' published MdA weights as this project's pretrain output:
``python -m stages.methods.depict.lasagne_weights``.

The authors' repository (github.com/herandy/DEPICT, ``results/DEPICT/params/
params_MNIST-test_values_best.pickle``, 713,456 bytes, SHA-256 ``a14023f8...``) holds the
best MdA weights of their MNIST-test run: Lasagne's ``get_all_param_values(decoder)``, a list of
12 float32 arrays in layer order (conv1 W, b; conv2 W, b; the embedding's dense W, b; the
decoder's dense W, b; deconv2 W, b; deconv1 W, b). They map onto
:class:`stages.nets.depict.DepictAutoencoder` as follows (:func:`state_dict_from_lasagne`):

* Lasagne's ``Conv2DLayer`` (``flip_filters=True``) is a true convolution and its
  ``Deconv2DLayer`` (``flip_filters=False``) the transpose of one; torch's ``Conv2d`` and
  ``ConvTranspose2d`` correlate, so every kernel is flipped in both spatial axes. The weight
  layouts are the same ((out, in, h, w) for the convolutions, (in, out, h, w) for the
  transposed ones).
* Lasagne's dense W is (in, out), torch's (out, in): transposed.

Nothing else differs (flattening and reshaping are C-order in both; the input map
(x - 127.5) / 127.5 is ours, 2 x/255 - 1). The weights are read from a local copy of the file
(not shipped with this project) with an unpickler that admits numpy arrays only.

The command writes ``model.pt``, ``history.csv`` and ``snapshots.h5`` into ``--out-dir``, the
files the pretrain stage writes, so that a run folder's init and fine-tuning start from them
(docs/reproduction/README.md). ``history.csv`` holds the weights' clean MdA loss (Eq. 12 without
the clustering term, the validation loss of :func:`stages.methods.depict.pretrain.pretrain_mda`)
on the held-out split our MdA of ``--seed`` uses and on all the data, with its input term: a
label-free check of the mapping (unflipped kernels give a loss several times larger) and the
mark our own pretraining is compared with.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import pickle
from pathlib import Path

import numpy as np
import torch
from torch import nn

from stages.data import read_dataset
from stages.data.archives import ArrayUnpickler
from stages.methods.depict.losses import layerwise_reconstruction
from stages.nets import build_network
from stages.plumbing.artifacts import write_csv
from stages.plumbing.cli import json_arg, limit_threads, main_for
from stages.plumbing.errors import DataFileError
from stages.plumbing.provenance import provenance
from stages.runtime.models import save_model
from stages.runtime.snapshots import recorder_for, write_snapshots
from stages.runtime.train import map_batches, validation_split

log = logging.getLogger("stages.methods.depict.lasagne_weights")

#: our parameter for each array of Lasagne's list, in its order, and how it is converted
LASAGNE_ORDER: tuple[tuple[str, str], ...] = (
    ("conv1.weight", "flip"), ("conv1.bias", "copy"),
    ("conv2.weight", "flip"), ("conv2.bias", "copy"),
    ("fc.weight", "transpose"), ("fc.bias", "copy"),
    ("defc.weight", "transpose"), ("defc.bias", "copy"),
    ("deconv2.weight", "flip"), ("deconv2.bias", "copy"),
    ("deconv1.weight", "flip"), ("deconv1.bias", "copy"),
)
#: the SHA-256 of the authors' MNIST-test file (its blob at herandy/DEPICT e75840d)
MNIST_TEST_SHA256 = "a14023f88115cf140eefc1c4464102e5907eafe387ad4e517f139768f13e6fe5"
def read_lasagne_values(path: str | Path) -> list[np.ndarray]:
    """The list of arrays in a Lasagne ``get_all_param_values`` pickle (Python 2 or 3)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError as err:
        raise DataFileError(f"{path}: not found; copy results/DEPICT/params/"
                            "params_MNIST-test_values_best.pickle of github.com/herandy/DEPICT "
                            "here (docs/reproduction/README.md)") from err
    try:
        values = ArrayUnpickler(io.BytesIO(data), what="Lasagne weights file",
                                encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
        raise DataFileError(f"{path}: not a pickle of numpy arrays ({err}); a Git LFS pointer or "
                            "an HTML page is not the weights file") from err
    if not isinstance(values, list) or not all(isinstance(v, np.ndarray) for v in values):
        raise DataFileError(f"{path}: expected a list of numpy arrays (Lasagne's "
                            f"get_all_param_values), got {type(values).__name__}")
    return values


def state_dict_from_lasagne(values: list[np.ndarray],
                            reference: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our state dict from Lasagne's arrays (module docstring), checked against the shapes of
    ``reference`` (the state dict of the network they are for).

    Raises:
        DataFileError: a different number of arrays, or an array whose converted shape is not
            the network's (another dataset's weights, or another architecture).
    """
    if len(values) != len(LASAGNE_ORDER):
        raise DataFileError(f"expected the {len(LASAGNE_ORDER)} arrays of DEPICT's MdA "
                            f"(conv1, conv2, dense, dense, deconv2, deconv1; W and b each), got "
                            f"{len(values)}")
    out = {}
    for (name, how), value in zip(LASAGNE_ORDER, values, strict=True):
        array = np.asarray(value, dtype=np.float32)
        if how == "flip":
            array = array[..., ::-1, ::-1]
        elif how == "transpose":
            array = array.T
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        if tensor.shape != reference[name].shape:
            raise DataFileError(f"{name}: the file's array becomes {tuple(tensor.shape)}, the "
                                f"network needs {tuple(reference[name].shape)}; the weights are "
                                "for another image size, embedding size or architecture")
        out[name] = tensor
    return out


def mda_losses(model: nn.Module, x: torch.Tensor, hidden_weight: float,
               batch: int = 500) -> dict[str, float]:
    """The clean MdA loss of ``model`` on x (N, C, H, W) in [0, 1]: ``loss`` (Eq. 12 without
    the clustering term, hidden layers weighted ``hidden_weight``, as MdA's validation loss) and
    ``input_term`` (the input's per-pixel MSE alone), sample-weighted means over batches."""
    totals = {"loss": 0.0, "input_term": 0.0}
    model.eval()
    with torch.no_grad():
        for start in range(0, x.shape[0], batch):
            xb = x[start:start + batch]
            clean = model.encoder_activations(xb)
            recon = model.decoder_activations(clean[-1])
            totals["loss"] += float(layerwise_reconstruction(clean[:-1], recon,
                                                             hidden_weight)) * xb.shape[0]
            totals["input_term"] += float(layerwise_reconstruction(clean[:1], recon[:1])) \
                * xb.shape[0]
    return {k: v / x.shape[0] for k, v in totals.items()}


def code_state(model: nn.Module, x: torch.Tensor) -> dict[str, float]:
    """Label-free state of the tanh codes: mean |z|, share of entries above 0.95 in magnitude,
    smallest per-dimension standard deviation."""
    with torch.no_grad():
        z = map_batches(model.encode, x, 1000).float()
    return {"code_mean_abs": float(z.abs().mean()),
            "code_saturated": float((z.abs() > 0.95).float().mean()),
            "code_min_std": float(z.std(dim=0).min())}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m stages.methods.depict.lasagne_weights",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("weights", help="the authors' params_<dataset>_values_best.pickle")
    p.add_argument("--data", required=True, help="results/data/<dataset>.h5 of the run")
    p.add_argument("--out-dir", required=True,
                   help="results/pretrain/<dataset>/depict/seed<S> of the run folder")
    p.add_argument("--seed", type=int, default=0,
                   help="the seed whose MdA held-out split the loss is reported on (and whose "
                        "snapshot subset is drawn)")
    p.add_argument("--arch", type=json_arg, default={"dropouts": [0.1, 0.1, 0.0]},
                   help="the depict autoencoder's arch (config.yaml autoencoders.depict.arch)")
    p.add_argument("--hidden-weight", type=float, default=0.1,
                   help="MdA's hidden-layer weight in the reported loss (config.yaml: 0.1)")
    p.add_argument("--validation-fraction", type=float, default=0.1)
    p.add_argument("--threads", type=int, default=None)
    return p


def run(args: argparse.Namespace) -> dict[str, float]:
    limit_threads(args.threads)
    values = read_lasagne_values(args.weights)
    digest = hashlib.sha256(Path(args.weights).read_bytes()).hexdigest()
    data = read_dataset(args.data)
    arch = {**args.arch, "embedding_dim": data.n_clusters}
    model = build_network("depict", data.input_shape, arch)
    model.load_state_dict(state_dict_from_lasagne(values, model.state_dict()))
    x = torch.as_tensor(data.X)
    _, val_idx = validation_split(x.shape[0], args.validation_fraction, args.seed)
    held_out = mda_losses(model, x[val_idx], args.hidden_weight)
    every = mda_losses(model, x, args.hidden_weight)
    report = {"heldout_loss": held_out["loss"], "heldout_input_term": held_out["input_term"],
              "all_loss": every["loss"], "all_input_term": every["input_term"],
              **code_state(model, x)}
    out = Path(args.out_dir)
    source = {"weights_file": Path(args.weights).name, "weights_sha256": digest,
              "authors_mnist_test_file": digest == MNIST_TEST_SHA256}
    meta = {"stage": "pretrain", "wall_s": 0.0, "device": "cpu", "precision": "32",
            "dataset": data.name,
            "n_train": 0, "steps": 0, "resumed_from_step": None,
            "provenance": provenance({"net": "depict", "arch": arch,
                                      "objective": "authors-weights", **source}, args.seed),
            "authors_weights": {**source, **report}}
    save_model(out / "model.pt", "depict", data.input_shape, arch, model.state_dict(), meta)
    write_csv(out / "history.csv", [{"kind": "validation", "phase": "authors-weights",
                                     "step": 0, "epoch": 0, "loss": report["heldout_loss"],
                                     **report}])
    recorder = recorder_for(model, model.encode, data.X, args.seed, torch.device("cpu"))
    recorder.take("pretrain authors-weights", 0, 1)
    write_snapshots(out / "snapshots.h5", recorder, {"stage": "pretrain", "dataset": data.name})
    log.info("wrote %s: %s", out / "model.pt", json.dumps(report))
    return report


if __name__ == "__main__":
    main_for(build_parser, run)
