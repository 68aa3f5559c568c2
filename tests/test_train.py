import pytest
import torch

from stages.plumbing.errors import DataFileError, NonFiniteLossError
from stages.runtime.train import (
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
    assert torch.load(ckpt.path, weights_only=True)["step"] == 60

    model, opt, loss_fn = _problem(seed=99)  # a fresh process: different initial weights
    resumed = run_loop(model, opt, loss_fn, 100, cfg, torch.device("cpu"), checkpoint=ckpt)
    assert resumed.resumed_from == 60
    for a, b in zip(reference, model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in full.history]


def test_the_loop_logs_progress_while_it_runs(caplog, monkeypatch):
    """A stage's log is not empty while it runs: progress lines with the loss terms."""
    import stages.runtime.train as train

    monkeypatch.setattr(train, "PROGRESS_SECONDS", 0.0)
    model, opt, loss_fn = _problem()
    cfg = LoopConfig(batch_size=10, max_steps=20, log_every=5)
    with caplog.at_level("INFO", logger="stages.runtime.train"):
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
    assert torch.load(ckpt.path, weights_only=True)["step"] == 20  # never overwritten with NaN


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


# --------------------------------------------------------------------------- corrupt checkpoints


def _corrupt(path, how: str) -> None:
    """Damage the checkpoint at ``path`` (a good one is there) in one of the ways a file gets
    damaged or replaced."""
    good = path.read_bytes()
    if how == "truncated":  # a copy cut short
        path.write_bytes(good[: len(good) // 2])
    elif how == "empty":  # a full disk
        path.write_bytes(b"")
    elif how == "garbage":
        path.write_bytes(bytes(range(256)) * 8)
    elif how == "not-a-dict":  # a tensor saved in its place
        torch.save(torch.zeros(3), path)
    elif how == "not-a-loop-state":
        torch.save({"step": 3, "history": []}, path)
    elif how == "another-model":  # the state of a network of another shape
        other = torch.nn.Linear(5, 2)
        torch.save({**torch.load(path, weights_only=True), "model": other.state_dict()}, path)


@pytest.mark.parametrize(("how", "problem"), [
    ("truncated", "the file is truncated or not a checkpoint"),
    ("empty", "the file is truncated or not a checkpoint"),
    ("garbage", "the file is truncated or not a checkpoint"),
    ("not-a-dict", "it holds a Tensor, not a checkpoint's dict"),
    ("not-a-loop-state", "it lacks model, optimizer, rng: not a training loop's checkpoint"),
    ("another-model", "its state does not fit this model or optimizer: Error(s) in loading"),
])
def test_a_corrupt_checkpoint_stops_with_what_is_wrong_and_how_to_restart(tmp_path, how,
                                                                          problem):
    cfg = LoopConfig(batch_size=20, max_steps=40, log_every=10, checkpoint_every=10)
    ckpt = Checkpointer(tmp_path / "checkpoint.pt")
    model, opt, loss_fn = _problem()
    run_loop(model, opt, loss_fn, 100, LoopConfig(batch_size=20, max_steps=20, log_every=10,
                                                  checkpoint_every=10),
             torch.device("cpu"), checkpoint=ckpt)
    _corrupt(ckpt.path, how)
    damaged = ckpt.path.read_bytes()
    model, opt, loss_fn = _problem()
    with pytest.raises(DataFileError) as err:
        run_loop(model, opt, loss_fn, 100, cfg, torch.device("cpu"), checkpoint=ckpt)
    message = str(err.value)
    assert message.startswith(f"{ckpt.path}: checkpoint is unreadable (")
    assert problem in message and "\n" not in message
    assert message.endswith("It was left as it is: delete it and rerun to restart the training "
                            "it holds from its first step.")
    assert ckpt.path.read_bytes() == damaged  # neither deleted nor overwritten
    ckpt.path.unlink()  # as the message says: the rerun starts afresh
    assert run_loop(model, opt, loss_fn, 100, cfg, torch.device("cpu"),
                    checkpoint=ckpt).resumed_from is None


def test_an_unreadable_checkpoint_under_a_job_key_is_not_discarded_silently(tmp_path):
    """Only a readable checkpoint of another job is discarded; a damaged one is reported."""
    ckpt = Checkpointer(tmp_path / "checkpoint.pt", key="k")
    ckpt.save({"step": 1})
    _corrupt(ckpt.path, "truncated")
    with pytest.raises(DataFileError, match="checkpoint is unreadable"):
        ckpt.load()
    assert ckpt.path.exists()


def test_a_corrupt_phase_checkpoint_costs_only_that_phase(tmp_path):
    """Two phases; the second's checkpoint is damaged after the first finished. The error names
    the phase and the checkpoints kept; after deleting it the first phase is resumed, not redone,
    and the result equals an uninterrupted run's."""
    cfg = LoopConfig(batch_size=20, max_steps=30, log_every=10, checkpoint_every=10)

    def two_phases(ckpt, calls):
        model, opt, loss_fn = _problem()
        torch.manual_seed(7)

        def counted(phase):
            def fn(idx):
                calls[phase] = calls.get(phase, 0) + 1
                return loss_fn(idx)
            return fn

        a = run_loop(model, opt, counted("a"), 100, cfg, torch.device("cpu"),
                     checkpoint=ckpt.phase("a"))
        b = run_loop(model, opt, counted("b"), 100, cfg, torch.device("cpu"),
                     checkpoint=ckpt.phase("b"))
        return model, a, b

    reference, _, _ = two_phases(Checkpointer(None), {})
    ckpt = Checkpointer(tmp_path / "checkpoint.pt")
    two_phases(ckpt, {})
    phase_a = (tmp_path / "checkpoint-a.pt").read_bytes()
    _corrupt(tmp_path / "checkpoint-b.pt", "truncated")

    calls: dict[str, int] = {}
    with pytest.raises(DataFileError) as err:
        two_phases(Checkpointer(tmp_path / "checkpoint.pt"), calls)
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'checkpoint-b.pt'}: checkpoint is unreadable (")
    assert message.endswith("delete it and rerun to restart phase 'b' from its first step; the "
                            "other checkpoints (checkpoint-a.pt) are kept and resumed.")
    assert calls == {} and (tmp_path / "checkpoint-a.pt").read_bytes() == phase_a

    (tmp_path / "checkpoint-b.pt").unlink()
    model, a, b = two_phases(Checkpointer(tmp_path / "checkpoint.pt"), calls)
    assert calls == {"b": 30}  # phase a was not run again
    assert (a.resumed_from, b.resumed_from) == (30, None)
    for got, want in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.equal(got, want)


def test_a_compiled_loss_trains_like_the_eager_one_and_checkpoints_the_same_weights(tmp_path):
    import torch._dynamo

    def problem():
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(100, 5, generator=gen)
        y = x @ torch.arange(5.0)
        torch.manual_seed(1)
        model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))

        def loss_fn(idx):
            mse = ((model(x[idx]).squeeze(1) - y[idx]) ** 2).mean()
            return {"loss": mse, "mse": mse}

        return model, torch.optim.SGD(model.parameters(), lr=1e-2), loss_fn

    # batch 32 of 100: three full batches and one of 4 per epoch, i.e. two static graphs
    cfg = LoopConfig(batch_size=32, max_steps=8, shuffle=True, seed=0, log_every=4)
    eager, opt, loss_fn = problem()
    run_loop(eager, opt, loss_fn, 100, cfg, torch.device("cpu"))
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    compiled, opt, loss_fn = problem()
    ckpt = Checkpointer(tmp_path / "ckpt.pt")
    res = run_loop(compiled, opt, loss_fn, 100, LoopConfig(**{**cfg.__dict__, "compile": True}),
                   torch.device("cpu"), checkpoint=ckpt)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1  # it did compile
    assert res.steps == 8
    for (name, a), (other, b) in zip(eager.state_dict().items(), compiled.state_dict().items(),
                                     strict=True):
        assert name == other  # the compiled loop trains the eager modules, names unchanged
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert ckpt.load()["model"].keys() == eager.state_dict().keys()
