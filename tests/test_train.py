import pytest
import torch

from stages.errors import NonFiniteLossError
from stages.train import (
    Checkpointer,
    LoopConfig,
    StageClock,
    batch_indices,
    map_batches,
    phase_steps,
    run_loop,
)


def _problem(seed=0):
    gen = torch.Generator().manual_seed(0)  # the data is the same in every call
    x = torch.randn(100, 5, generator=gen)
    y = x @ torch.arange(5.0) + 0.1 * torch.randn(100, generator=gen)
    torch.manual_seed(seed)  # the initial weights are not
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Dropout(0.2), torch.nn.Linear(8, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)

    def loss_fn(idx):
        mse = ((model(x[idx]).squeeze(1) - y[idx]) ** 2).mean()
        return {"loss": mse, "mse": mse}

    return model, opt, loss_fn


def test_batches_cover_each_epoch_once_and_depend_only_on_step():
    cfg = LoopConfig(batch_size=32, max_steps=100, shuffle=True, seed=3)
    epoch = torch.cat([batch_indices(s, 100, cfg, torch.device("cpu")) for s in range(4)])
    assert sorted(epoch.tolist()) == list(range(100))
    assert torch.equal(batch_indices(5, 100, cfg, torch.device("cpu")),
                       batch_indices(5, 100, cfg, torch.device("cpu")))
    seq = LoopConfig(batch_size=32, max_steps=10, shuffle=False)
    assert batch_indices(3, 100, seq, torch.device("cpu")).tolist() == list(range(96, 100))


def test_loop_lowers_loss_and_logs_history():
    model, opt, loss_fn = _problem()
    res = run_loop(model, opt, loss_fn, 100, LoopConfig(batch_size=20, max_steps=200, log_every=10),
                   torch.device("cpu"))
    assert res.steps == 200 and len(res.history) == 20
    assert res.history[-1]["mse"] < res.history[0]["mse"] / 5
    assert {"kind", "step", "epoch", "loss", "mse"} <= set(res.history[0])


class _Killed(Exception):
    pass


def test_resume_after_kill_gives_identical_weights(tmp_path):
    cfg = LoopConfig(batch_size=16, max_steps=120, log_every=10, checkpoint_every=30, seed=1)
    model, opt, loss_fn = _problem()
    torch.manual_seed(123)
    full = run_loop(model, opt, loss_fn, 100, cfg, torch.device("cpu"))
    reference = [p.detach().clone() for p in model.parameters()]

    ckpt = Checkpointer(tmp_path / "checkpoint.pt")
    model, opt, loss_fn = _problem()
    torch.manual_seed(123)
    calls = {"n": 0}

    def dying(idx):
        calls["n"] += 1
        if calls["n"] == 75:  # killed between the checkpoints at steps 60 and 90
            raise _Killed
        return loss_fn(idx)

    with pytest.raises(_Killed):
        run_loop(model, opt, dying, 100, cfg, torch.device("cpu"), checkpoint=ckpt)
    assert torch.load(ckpt.path, weights_only=False)["step"] == 60

    model, opt, loss_fn = _problem(seed=99)  # a fresh process: different initial weights
    resumed = run_loop(model, opt, loss_fn, 100, cfg, torch.device("cpu"), checkpoint=ckpt)
    assert resumed.resumed_from == 60
    for a, b in zip(reference, model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in full.history]


def test_the_loop_logs_progress_while_it_runs(caplog, monkeypatch):
    """A stage's log is not empty while it runs: progress lines with the loss terms."""
    import stages.train as train

    monkeypatch.setattr(train, "PROGRESS_SECONDS", 0.0)
    model, opt, loss_fn = _problem()
    cfg = LoopConfig(batch_size=10, max_steps=20, log_every=5)
    with caplog.at_level("INFO", logger="stages.train"):
        run_loop(model, opt, loss_fn, 100, cfg, torch.device("cpu"), desc="pretrain t")
    lines = [r.getMessage() for r in caplog.records if "pretrain t: step" in r.getMessage()]
    assert len(lines) == 4 and lines[-1].startswith("pretrain t: step 20/20 (epoch 1): loss ")


def test_stage_clock_carries_the_wall_time_of_the_killed_run(tmp_path):
    """A stage resumed from its checkpoints reports the seconds of every process that ran it."""
    first = StageClock()
    first.start -= 100.0  # the killed process had run for 100 s
    Checkpointer(tmp_path / "checkpoint.pt", first).phase("warmstart").save({"step": 1})
    first.start -= 50.0   # ... and 150 s at its last checkpoint
    Checkpointer(tmp_path / "checkpoint.pt", first).save({"step": 2})

    again = StageClock()  # the rerun, after loading both checkpoints
    ckpt = Checkpointer(tmp_path / "checkpoint.pt", again)
    assert ckpt.phase("warmstart").load()["stage_wall_s"] == pytest.approx(100.0, abs=1.0)
    assert ckpt.load()["step"] == 2
    assert 150.0 <= again.elapsed() < 152.0
    assert StageClock().elapsed() < 1.0  # a fresh stage starts at zero


def test_checkpoint_half_written_by_a_killed_job_is_cleaned_up(tmp_path):
    ckpt = Checkpointer(tmp_path / "checkpoint.pt")
    phase = ckpt.phase("rbm1")
    # what a job killed inside torch.save leaves: partial files named after the dead writer's pid
    for path in (ckpt.path, phase.path):
        path.with_name(path.name + ".tmp-999999").write_bytes(b"half a pickle")
    ckpt.save({"step": 3})
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint-rbm1.pt.tmp-999999", "checkpoint.pt"]  # a save clears its own leftovers
    assert ckpt.load()["step"] == 3
    phase.save({"step": 1})
    ckpt.path.with_name("checkpoint.pt.tmp-999998").write_bytes(b"killed again")
    ckpt.remove()
    assert list(tmp_path.iterdir()) == []


def test_nan_loss_names_epoch_term_and_checkpoint(tmp_path):
    model, opt, loss_fn = _problem()
    ckpt = Checkpointer(tmp_path / "checkpoint.pt")

    def exploding(idx):
        terms = loss_fn(idx)
        if opt.state and next(iter(opt.state.values()))["step"] >= 25:
            terms["reconstruction"] = terms["loss"] * float("nan")
            terms["loss"] = terms["loss"] + terms["reconstruction"]
        else:
            terms["reconstruction"] = terms["loss"].detach() * 0
        return terms

    cfg = LoopConfig(batch_size=20, max_steps=100, log_every=10, checkpoint_every=10)
    with pytest.raises(NonFiniteLossError, match=r"'loss'.*epoch 5.*checkpoint.pt") as err:
        run_loop(model, opt, exploding, 100, cfg, torch.device("cpu"), checkpoint=ckpt)
    assert "last good checkpoint" in str(err.value)
    assert torch.load(ckpt.path, weights_only=False)["step"] == 20  # never overwritten with NaN


def test_map_batches_matches_full_pass():
    lin = torch.nn.Linear(3, 2)
    x = torch.randn(1000, 3)
    assert torch.allclose(map_batches(lin, x, batch_size=64), lin(x).detach(), atol=1e-6)


def test_phase_steps_prefers_steps_then_epochs_then_the_default():
    assert phase_steps({"steps": 7, "epochs": 2}, "", 10) == 7
    assert phase_steps({"epochs": 2}, "", 10) == 20
    assert phase_steps({"layer_steps": 3}, "layer", 10) == 3
    assert phase_steps({}, "lr_step", 10, default_epochs=4) == 40
    with pytest.raises(KeyError, match="neither 'layer_steps' nor 'layer_epochs'"):
        phase_steps({}, "layer", 10)
