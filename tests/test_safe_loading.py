"""No artifact can run code when it is loaded (issue 45).

Each file a stage reads that someone else could have written (a model, a checkpoint, an
embedding snapshot, a dataset's pickled batches) is crafted here to carry a payload: an object
whose ``__reduce__`` makes unpickling call ``os.system('touch SENTINEL')``. Each is refused with
a clear one-line error, and the sentinel file is never created: the payload did not run.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from stages.data import archives, sources
from stages.data.checksum import sha256_file
from stages.data.preparation import prepare
from stages.nets import build_network
from stages.plumbing.errors import DataFileError
from stages.runtime.models import load_model, save_model
from stages.runtime.snapshots import SnapshotRecorder, read_snapshots, write_snapshots
from stages.runtime.torchfiles import UnsafeFileError, load_torch
from stages.runtime.train import Checkpointer, LoopConfig, recording, run_loop
from tests.datafiles import tar_gz


class Payload:
    """Unpickling this runs ``touch <sentinel>``."""

    def __init__(self, sentinel: Path):
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


@pytest.fixture
def sentinel(tmp_path) -> Path:
    path = tmp_path / "SENTINEL"
    # the payload works: unpickled as torch.load(weights_only=False) would, it touches the file
    pickle.loads(pickle.dumps(Payload(path)))
    assert path.exists()
    path.unlink()
    return path


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message and "weights_only=False" not in message
    return message


# ------------------------------------------------------------------------------------- model.pt

def _model_payload() -> dict:
    net = build_network("sae", (1, 8, 8), {"hidden": [16, 4]})
    return {"net": "sae", "input_shape": [1, 8, 8], "arch": {"hidden": [16, 4]},
            "state_dict": net.state_dict(), "meta": {"stage": "pretrain"}}


def _save_as(path: Path, payload, how: str) -> None:
    """``payload`` written as torch writes it now, as older torch wrote it, or as a bare
    pickle (protocol 2, whose globals torch's unpickler reads, and protocol 5)."""
    if how == "zip":
        torch.save(payload, path)
    elif how == "legacy":
        torch.save(payload, path, _use_new_zipfile_serialization=False)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=int(how[-1])))


@pytest.mark.parametrize("how", ["zip", "legacy", "pickle2", "pickle5"])
def test_a_crafted_model_is_refused_and_its_payload_does_not_run(tmp_path, sentinel, how):
    path = tmp_path / "model.pt"
    _save_as(path, {**_model_payload(), "meta": {"note": Payload(sentinel)}}, how)
    with pytest.raises(DataFileError) as err:
        load_model(path, torch.device("cpu"))
    message = _one_line(err)
    assert message.startswith(f"{path}: ") and "delete it and rerun the pretrain stage" in \
        message.lower()
    if how in ("zip", "legacy"):
        assert "refused: it asks to import posix.system while it loads" in message
    if how != "pickle5":  # protocol 5's framing stops torch's unpickler before any global
        assert "refused: it asks to import" in message and "loading it could run code" in message
    assert not sentinel.exists()


def test_a_model_written_by_the_workflow_loads_without_pickle(tmp_path):
    path = tmp_path / "model.pt"
    payload = _model_payload()
    save_model(path, payload["net"], (1, 8, 8), payload["arch"], payload["state_dict"],
               {"stage": "pretrain", "steps": 3, "resumed_from_step": None, "wall_s": 1.5,
                "provenance": {"seed": 0, "config_hash": "abc"}})
    model, loaded = load_model(path, torch.device("cpu"))
    assert loaded["meta"]["steps"] == 3 and loaded["meta"]["resumed_from_step"] is None
    for key, tensor in payload["state_dict"].items():
        assert torch.equal(model.state_dict()[key], tensor)


def test_load_torch_names_every_global_outside_the_allowlist(tmp_path, sentinel):
    path = tmp_path / "x.pt"
    torch.save({"a": Payload(sentinel), "b": np.float64(1.0)}, path)
    with pytest.raises(UnsafeFileError) as err:
        load_torch(path)
    message = _one_line(err)
    assert "posix.system" in message and "numpy" in message
    assert not sentinel.exists()


# ------------------------------------------------------------------------------- checkpoint.pt

def _problem():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(40, 3, generator=gen)
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)

    def loss_fn(idx):
        loss = (model(x[idx]) ** 2).mean()
        return {"loss": loss}

    return model, opt, loss_fn, x


CFG = LoopConfig(batch_size=10, max_steps=8, log_every=2, checkpoint_every=2)


def _checkpoint(tmp_path: Path, key: str | None = None) -> Checkpointer:
    """A real checkpoint of a short loop, then the loop's state to add a payload to."""
    ckpt = Checkpointer(tmp_path / "checkpoint.pt", key=key)
    model, opt, loss_fn, _ = _problem()
    run_loop(model, opt, loss_fn, 40, LoopConfig(batch_size=10, max_steps=4, log_every=2,
                                                 checkpoint_every=2),
             torch.device("cpu"), checkpoint=ckpt)
    return ckpt


@pytest.mark.parametrize("key", [None, "job-key"])
@pytest.mark.parametrize("where", ["history", "rng", "hook", "optimizer"])
def test_a_crafted_checkpoint_is_refused_and_its_payload_does_not_run(tmp_path, sentinel, key,
                                                                      where):
    ckpt = _checkpoint(tmp_path, key)
    state = load_torch(ckpt.path)
    if where == "optimizer":
        state["optimizer"]["param_groups"][0]["lr"] = Payload(sentinel)
    elif where == "history":
        state["history"].append({"kind": "train", "loss": Payload(sentinel)})
    else:
        state[where] = {"cpu": Payload(sentinel)}
    torch.save(state, ckpt.path)
    crafted = ckpt.path.read_bytes()
    model, opt, loss_fn, _ = _problem()
    with pytest.raises(DataFileError) as err:  # under a job key too: not discarded silently
        run_loop(model, opt, loss_fn, 40, CFG, torch.device("cpu"), checkpoint=ckpt)
    message = _one_line(err)
    assert message.startswith(f"{ckpt.path}: checkpoint is unreadable (it asks to import "
                              "posix.system while it loads")
    assert message.endswith("delete it and rerun to restart the training it holds from its "
                            "first step.")
    assert ckpt.path.read_bytes() == crafted  # left as it is for the user to look at
    assert not sentinel.exists()


def test_a_checkpoint_as_older_torch_wrote_it_still_resumes_to_the_same_weights(tmp_path):
    """Files written before weights_only (the same plain payload, here in torch's legacy
    format as well) still load, and the resumed run ends exactly where an unbroken one does."""
    model, opt, loss_fn, _ = _problem()
    run_loop(model, opt, loss_fn, 40, CFG, torch.device("cpu"))
    ckpt = _checkpoint(tmp_path)  # the state after step 4 of 8, as a job killed then left it
    torch.save({**load_torch(ckpt.path), "finished": False}, ckpt.path,
               _use_new_zipfile_serialization=False)
    resumed, opt2, loss_fn2, _ = _problem()
    result = run_loop(resumed, opt2, loss_fn2, 40, CFG, torch.device("cpu"), checkpoint=ckpt)
    assert result.resumed_from == 4 and result.steps == 8
    for key, tensor in model.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[key]), key


def test_an_older_checkpoint_holding_numpy_values_says_to_delete_it_and_rerun(tmp_path):
    """A numpy scalar is outside the allowlist: such a file is refused in one line saying
    what to do, and left in place (nothing is lost silently)."""
    ckpt = _checkpoint(tmp_path)
    state = load_torch(ckpt.path)
    state["history"][0]["loss"] = np.float64(state["history"][0]["loss"])
    torch.save(state, ckpt.path)
    model, opt, loss_fn, _ = _problem()
    with pytest.raises(DataFileError) as err:
        run_loop(model, opt, loss_fn, 40, CFG, torch.device("cpu"), checkpoint=ckpt)
    message = _one_line(err)
    assert "it asks to import numpy" in message
    assert message.endswith("delete it and rerun to restart the training it holds from its "
                            "first step.")
    assert ckpt.path.exists()


# ------------------------------------------------------------------ embedding snapshots

def _recorder() -> tuple[SnapshotRecorder, torch.nn.Module, torch.optim.Optimizer, object]:
    model, opt, loss_fn, x = _problem()
    return SnapshotRecorder(model, model, x[:5], np.arange(5)), model, opt, loss_fn


def test_a_checkpoint_with_crafted_snapshots_is_refused(tmp_path, sentinel):
    """The snapshots taken so far travel in the checkpoint (the recorder's state)."""
    ckpt = Checkpointer(tmp_path / "checkpoint.pt")
    recorder, model, opt, loss_fn = _recorder()
    with recording(recorder):
        run_loop(model, opt, loss_fn, 40, LoopConfig(batch_size=10, max_steps=4, log_every=2,
                                                     checkpoint_every=2),
                 torch.device("cpu"), checkpoint=ckpt)
    state = load_torch(ckpt.path)
    assert state["snapshots"]["entries"]  # the recorder's state is in it, and loads safely
    state["snapshots"]["entries"].append(("train", 4, 1.0, Payload(sentinel)))
    torch.save(state, ckpt.path)
    recorder, model, opt, loss_fn = _recorder()
    with recording(recorder), pytest.raises(DataFileError) as err:
        run_loop(model, opt, loss_fn, 40, CFG, torch.device("cpu"), checkpoint=ckpt)
    assert "it asks to import posix.system" in _one_line(err)
    assert recorder.entries == [] and not sentinel.exists()


@pytest.mark.parametrize("where", ["phases", "embeddings"])
def test_a_crafted_snapshots_file_is_refused_and_its_payload_does_not_run(tmp_path, sentinel,
                                                                         where):
    """HDF5 holds no code, but a crafted snapshots.h5 may carry a pickle in place of the phase
    names or the embeddings: it is refused as not a snapshots file, and nothing unpickles it."""
    recorder, *_ = _recorder()
    recorder.take("train", 0, 4)
    path = tmp_path / "snapshots.h5"
    write_snapshots(path, recorder)
    blob = np.void(pickle.dumps(Payload(sentinel)))
    with h5py.File(path, "a") as f:
        if where == "phases":
            f.attrs["phases"] = blob
        else:
            shape = f["embeddings"].shape
            del f["embeddings"]
            f["embeddings"] = np.full(shape, blob)
    with pytest.raises(DataFileError) as err:
        read_snapshots(path)
    message = _one_line(err)
    assert message.startswith(f"{path}: not a snapshots file of this workflow (")
    assert message.endswith("delete it and rerun its stage")
    assert not sentinel.exists()


# -------------------------------------------------------------------------- dataset pickles

def _crafted_cifar(path: Path, sentinel: Path) -> None:
    batch = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1],
             b"filenames": Payload(sentinel)}
    path.write_bytes(tar_gz({"cifar-10-batches-py/test_batch": pickle.dumps(batch, protocol=2)}))


def test_a_crafted_dataset_pickle_is_refused_and_its_payload_does_not_run(tmp_path, sentinel):
    path = tmp_path / "cifar-10-python.tar.gz"
    _crafted_cifar(path, sentinel)
    with pytest.raises(DataFileError) as err:
        archives.tar_pickles(path, ["cifar-10-batches-py/test_batch"], "a CIFAR batch")
    message = _one_line(err)
    assert "refusing to load posix.system" in message
    assert not sentinel.exists()


def test_a_downloaded_pickle_is_opened_only_after_its_pinned_checksum_matched(
        tmp_path, sentinel, monkeypatch):
    """A manifest that lists a swapped archive (with its own, matching sha256) is refused by
    prepare before any pickle in it is opened."""
    path = tmp_path / "raw" / "cifar-10-python.tar.gz"
    path.parent.mkdir()
    _crafted_cifar(path, sentinel)
    manifest = tmp_path / "raw" / "manifest.json"
    manifest.write_text(json.dumps({
        "dataset": "cifar10-test", "kind": "download", "source": "a download",
        "files": [{"name": path.name, "path": str(path), "sha256": sha256_file(path),
                   "url": None}]}))
    opened = []
    monkeypatch.setattr(sources, "tar_pickles", lambda *a, **k: opened.append(a))
    with pytest.raises(DataFileError) as err:
        prepare("cifar10-test", manifest, tmp_path / "cifar10-test.h5")
    assert "does not have the pinned" in _one_line(err)
    assert opened == [] and not sentinel.exists()
