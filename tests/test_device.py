"""Device choice (stages.runtime.device) and where checkpoints and models land, on a CPU-only torch:
``torch.cuda`` is monkeypatched to stand for a node with GPUs, and a checkpoint written on a GPU
is made by tagging CPU storages as ``cuda:0`` while saving."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.serialization
from torch import nn

from stages.plumbing.errors import ConfigError
from stages.runtime.device import configure_torch, describe, resolve_device
from stages.runtime.models import load_model, save_model
from stages.runtime.precision import use_precision
from stages.runtime.train import Checkpointer, LoopConfig, run_loop


@pytest.fixture
def gpus(monkeypatch: pytest.MonkeyPatch):
    """Make torch report ``n`` usable GPUs (0: none): ``gpus(2)``."""
    def have(n: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
    return have


def test_auto_takes_the_gpu_when_one_is_usable(gpus, monkeypatch, caplog) -> None:
    gpus(2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    with caplog.at_level(logging.WARNING, logger="stages.runtime.device"):
        assert resolve_device("auto") == torch.device("cuda")
        assert resolve_device() == torch.device("cuda")  # auto is the default
    assert caplog.text == ""
    assert resolve_device("cpu") == torch.device("cpu")  # cpu is honoured with GPUs too


def test_auto_falls_back_to_the_cpu_and_says_so_when_a_gpu_was_promised(gpus, monkeypatch,
                                                                        caplog) -> None:
    gpus(0)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with caplog.at_level(logging.WARNING, logger="stages.runtime.device"):
        assert resolve_device("auto") == torch.device("cpu")
    assert "CUDA_VISIBLE_DEVICES=0 but torch sees no usable GPU" in caplog.text
    caplog.clear()
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")  # none promised: no warning
    with caplog.at_level(logging.WARNING, logger="stages.runtime.device"):
        assert resolve_device("auto") == torch.device("cpu")
    assert caplog.text == ""


def test_cuda_n_is_honoured_within_the_visible_gpus(gpus) -> None:
    gpus(2)
    assert resolve_device("cuda") == torch.device("cuda")
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)


def test_cuda_n_beyond_the_visible_gpus_is_a_clear_error(gpus, monkeypatch) -> None:
    gpus(2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    with pytest.raises(ConfigError) as err:
        resolve_device("cuda:2")
    message = str(err.value)
    assert "device 'cuda:2'" in message and "torch sees 2 GPU(s), cuda:0 to cuda:1" in message
    assert "CUDA_VISIBLE_DEVICES=3,5" in message and "set device: cuda" in message


@pytest.mark.parametrize("requested", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_a_gpu_is_a_clear_error(gpus, requested: str) -> None:
    gpus(0)
    with pytest.raises(ConfigError, match=f"device '{requested}' was set in the config but torch "
                                          "sees no usable GPU; set device: auto"):
        resolve_device(requested)


@pytest.mark.parametrize("requested", ["tpu", "gpu", "cuda:", "cuda:x", "cuda:-1", "cuda:1:2",
                                       "CUDA", "mps"])
def test_unknown_device_names_the_valid_choices(gpus, requested: str) -> None:
    gpus(2)
    with pytest.raises(ConfigError, match="valid choices: auto, cpu, cuda, cuda:N"):
        resolve_device(requested)


def test_tf32_is_on_only_under_bf16_mixed_on_a_gpu_and_a_gpu_is_described_by_its_name(
        gpus, monkeypatch) -> None:
    gpus(1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:  # torch.backends' flags are properties: set and restored by hand
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        configure_torch(None, resolve_device("auto"))  # threads only: precision decides TF32
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        use_precision(nn.Linear(2, 2), "bf16-mixed", torch.device("cpu"))
        assert not torch.backends.cuda.matmul.allow_tf32  # a CPU model leaves CUDA alone
        use_precision(nn.Linear(2, 2), "bf16-mixed", torch.device("cuda"))
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        use_precision(nn.Linear(2, 2), "32", torch.device("cuda"))
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
        torch.set_flush_denormal(False)  # configure_torch set it for this process
    assert describe(torch.device("cuda")) == "cuda (NVIDIA H200)"
    assert describe(torch.device("cpu")).startswith("cpu (")


_DENORMALS = """
import sys, torch
from stages.runtime.device import configure_torch
if sys.argv[1] == "configure":
    configure_torch(2, torch.device("cpu"))
else:
    torch.set_num_threads(2)
a = torch.full((4_000_000,), 1e-39)   # fp32 denormals, enough for both threads to share
print(int((a * 1.0 != 0).sum()))
"""


@pytest.mark.parametrize("how", ["configure", "plain"])
def test_configure_torch_flushes_denormals_on_every_cpu_thread(how: str) -> None:
    """A denormal times 1.0 is 0 in every thread's share after configure_torch (the threads
    inherit the setting), and stays a denormal without it (the check can fail)."""
    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush denormals (no SSE3)")
    done = subprocess.run([sys.executable, "-c", _DENORMALS, how], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).resolve().parents[1])
    assert int(done.stdout.strip()) == (0 if how == "configure" else 4_000_000)


# --------------------------------------------------------------------------- where files load


def _save_as_if_on_gpu(monkeypatch: pytest.MonkeyPatch, obj: object, path) -> None:
    """torch.save ``obj`` with every CPU storage recorded as on ``cuda:0`` (what a GPU job
    writes), by registering a higher-priority location tagger for the duration of the save."""
    with monkeypatch.context() as patch:
        patch.setattr(torch.serialization, "_package_registry",
                      list(torch.serialization._package_registry))
        torch.serialization.register_package(
            1, lambda storage: "cuda:0" if storage.device.type == "cpu" else None,
            lambda storage, location: None)
        torch.save(obj, path)


def _problem():
    torch.manual_seed(0)
    x = torch.randn(40, 3)
    y = x.sum(1, keepdim=True)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    return model, opt, lambda idx: {"loss": ((model(x[idx]) - y[idx]) ** 2).mean()}


def test_a_checkpoint_written_on_a_gpu_resumes_on_a_cpu_only_node(tmp_path, monkeypatch) -> None:
    """Checkpointer.load maps every storage to the CPU, the one device every node has; the loop
    then copies the state into the model and optimizer wherever they live."""
    cfg = LoopConfig(batch_size=10, max_steps=12, log_every=4, checkpoint_every=4)
    model, opt, loss_fn = _problem()
    written = Checkpointer(tmp_path / "written.pt")
    run_loop(model, opt, loss_fn, 40, LoopConfig(batch_size=10, max_steps=8, log_every=4,
                                                checkpoint_every=4), torch.device("cpu"),
             checkpoint=written)
    state = torch.load(written.path, weights_only=True)
    gpu_path = tmp_path / "checkpoint.pt"
    _save_as_if_on_gpu(monkeypatch, {**state, "finished": False}, gpu_path)
    assert not torch.cuda.is_available()
    with pytest.raises(RuntimeError, match="CUDA"):  # it really says cuda:0 inside
        torch.load(gpu_path, weights_only=True)

    seen = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: seen.append(k) or real_load(*a, **k))
    model, opt, loss_fn = _problem()
    resumed = run_loop(model, opt, loss_fn, 40, cfg, torch.device("cpu"),
                       checkpoint=Checkpointer(gpu_path))
    assert [k["map_location"] for k in seen] == ["cpu"]
    assert resumed.resumed_from == 8 and resumed.steps == 12
    assert opt.state[model.weight]["exp_avg"].device == model.weight.device


def test_a_model_loads_onto_the_chosen_device(tmp_path, monkeypatch) -> None:
    """load_model reads to the CPU and moves the rebuilt network to the stage's device; the
    ``meta`` device stands for a GPU (a device other than the CPU) here."""
    torch.manual_seed(0)
    from stages.nets import build_network

    net = build_network("sae", (1, 4, 4), {"hidden": [6, 2]})
    path = tmp_path / "model.pt"
    save_model(path, "sae", (1, 4, 4), {"hidden": [6, 2]}, net.state_dict(), {"wall_s": 1.0})
    seen = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: seen.append(k) or real_load(*a, **k))
    model, payload = load_model(path, torch.device("meta"))
    assert [k["map_location"] for k in seen] == ["cpu"]
    assert {p.device.type for p in model.parameters()} == {"meta"}
    assert payload["meta"] == {"wall_s": 1.0}
    on_cpu, _ = load_model(path, torch.device("cpu"))
    for a, b in zip(on_cpu.state_dict().values(), net.state_dict().values(), strict=True):
        assert torch.equal(a, b)

    gpu_path = tmp_path / "gpu-model.pt"  # written by a GPU pretraining job
    _save_as_if_on_gpu(monkeypatch, real_load(path, weights_only=True), gpu_path)
    on_cpu, _ = load_model(gpu_path, torch.device("cpu"))
    for a, b in zip(on_cpu.state_dict().values(), net.state_dict().values(), strict=True):
        assert torch.equal(a, b)
