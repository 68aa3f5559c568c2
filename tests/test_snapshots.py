"""Embedding snapshots: the schedule, the loop's calls, resuming, and the file."""

import h5py
import numpy as np
import pytest
import torch

from stages.plumbing.errors import DataFileError
from stages.runtime.snapshots import (
    due,
    no_snapshots,
    read_snapshots,
    recorder_for,
    write_snapshots,
)
from stages.runtime.train import Checkpointer, LoopConfig, recording, run_loop


class _Killed(Exception):
    pass


def _problem(seed=0):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(100, 5, generator=gen)
    y = x @ torch.arange(5.0)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(5, 3), torch.nn.Dropout(0.5), torch.nn.Linear(3, 1))
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)

    def loss_fn(idx):
        mse = ((model(x[idx]).squeeze(1) - y[idx]) ** 2).mean()
        return {"loss": mse}

    encode = torch.nn.Sequential(model[0], model[1])  # the "embedding": dropout in the path
    return model, opt, loss_fn, x, encode


def test_due_at_start_and_after_power_of_two_epochs():
    assert [s for s in range(0, 41) if due(s, 5)] == [0, 5, 10, 20, 40]
    assert not due(3, 5)


def test_the_loop_records_the_schedule_and_the_end(tmp_path):
    model, opt, loss_fn, x, encode = _problem()
    recorder = recorder_for(model, encode, x.numpy(), seed=0, device=torch.device("cpu"),
                            n_points=30)
    cfg = LoopConfig(batch_size=20, max_steps=33, log_every=5)  # 5 steps per epoch
    with recording(recorder):
        run_loop(model, opt, loss_fn, 100, cfg, torch.device("cpu"), desc="phase-a")
        run_loop(model, opt, loss_fn, 100, LoopConfig(batch_size=50, max_steps=2),
                 torch.device("cpu"), desc="phase-b")
    with torch.no_grad():
        model.eval()
        now = encode(x[torch.as_tensor(recorder.index)]).numpy()
        model.train()
    run_loop(model, opt, loss_fn, 100, cfg, torch.device("cpu"))  # outside: nothing recorded
    arrays, attrs = recorder.arrays()
    assert list(arrays["step"]) == [0, 5, 10, 20, 33, 0, 2]
    assert attrs["phases"] == ["phase-a"] * 5 + ["phase-b"] * 2
    assert arrays["embeddings"].shape == (7, 30, 3) and arrays["index"].shape == (30,)
    assert list(arrays["epoch"][:5]) == [0.0, 1.0, 2.0, 4.0, 6.6]
    # embedded in eval mode (no dropout), and training went on in train mode
    assert model.training
    np.testing.assert_allclose(arrays["embeddings"][-1], now, rtol=1e-6)
    assert not np.allclose(arrays["embeddings"][0], arrays["embeddings"][-1])  # it trained

    path = tmp_path / "snapshots.h5"
    write_snapshots(path, recorder, {"stage": "test"})
    back, phases = read_snapshots(path)
    assert phases == attrs["phases"]
    np.testing.assert_array_equal(back["embeddings"], arrays["embeddings"])


def test_a_resumed_loop_keeps_the_snapshots_taken_before(tmp_path):
    cfg = LoopConfig(batch_size=20, max_steps=60, log_every=5, checkpoint_every=25)
    model, opt, loss_fn, x, encode = _problem()
    full = recorder_for(model, encode, x.numpy(), 0, torch.device("cpu"), n_points=10)
    with recording(full):
        run_loop(model, opt, loss_fn, 100, cfg, torch.device("cpu"))

    model, opt, loss_fn, x, encode = _problem()
    ckpt = Checkpointer(tmp_path / "checkpoint.pt")
    calls = {"n": 0}

    def dying(idx):
        calls["n"] += 1
        if calls["n"] == 40:  # after the checkpoint at step 25 and the snapshot at step 20
            raise _Killed
        return loss_fn(idx)

    first = recorder_for(model, encode, x.numpy(), 0, torch.device("cpu"), n_points=10)
    with recording(first), pytest.raises(_Killed):
        run_loop(model, opt, dying, 100, cfg, torch.device("cpu"), checkpoint=ckpt)
    model, opt, loss_fn, x, encode = _problem(seed=5)
    again = recorder_for(model, encode, x.numpy(), 0, torch.device("cpu"), n_points=10)
    with recording(again):
        run_loop(model, opt, loss_fn, 100, cfg, torch.device("cpu"), checkpoint=ckpt)
    assert [e[1] for e in again.entries] == [e[1] for e in full.entries] == [0, 5, 10, 20, 40, 60]
    for a, b in zip(again.entries, full.entries, strict=True):
        torch.testing.assert_close(a[3], b[3])


def test_an_empty_file_and_a_damaged_one(tmp_path):
    path = tmp_path / "none.h5"
    write_snapshots(path, no_snapshots(50, seed=1, n_points=20))
    arrays, phases = read_snapshots(path)
    assert arrays["embeddings"].shape[0] == 0 and phases == [] and arrays["index"].shape == (20,)
    model, opt, loss_fn, x, encode = _problem()
    recorder = recorder_for(model, encode, x.numpy(), 0, torch.device("cpu"), n_points=10)
    recorder.take("p", 0, 5)
    write_snapshots(path, recorder)
    with h5py.File(path, "a") as f:
        f.attrs["phases"] = "[]"
    with pytest.raises(DataFileError, match="1 snapshots but 0 phases"):
        read_snapshots(path)
