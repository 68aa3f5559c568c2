"""Checks that need a CUDA GPU (marker ``cuda``; skipped without one). ``bench/gpu_check.sh``
runs them first on a GPU node."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stages.nets import build_network
from stages.runtime.precision import mixed_layers, use_precision
from stages.runtime.train import Checkpointer, LoopConfig, run_loop

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")]
GPU = torch.device("cuda")


def test_a_bf16_mixed_layer_on_the_gpu_computes_in_bf16_and_returns_fp32() -> None:
    torch.manual_seed(0)
    layer = nn.Linear(64, 32).to(GPU)
    x = torch.randn(8, 64, device=GPU)
    use_precision(layer, "bf16-mixed", GPU)
    out = layer(x)
    assert out.dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32
    by_hand = F.linear(x.bfloat16(), layer.weight.bfloat16(), layer.bias.bfloat16()).float()
    torch.testing.assert_close(out, by_hand, rtol=1e-2, atol=1e-2)
    use_precision(layer, "32", GPU)
    assert not torch.backends.cuda.matmul.allow_tf32


@pytest.mark.parametrize("precision", ["32", "bf16-mixed"])
def test_training_on_the_gpu_lowers_the_loss_and_resumes_on_the_cpu(precision, tmp_path) -> None:
    torch.manual_seed(0)
    model = build_network("cae", (1, 28, 28), {"embedding_dim": 10}).to(GPU)
    x = torch.rand(256, 1, 28, 28, device=GPU)

    def loss_fn(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        _, x_hat = model(x[idx])
        return {"loss": ((x_hat - x[idx]) ** 2).mean()}

    cfg = LoopConfig(batch_size=64, max_steps=80, log_every=8, checkpoint_every=8,
                     precision=precision)
    checkpoint = Checkpointer(tmp_path / "checkpoint.pt")
    result = run_loop(model, torch.optim.Adam(model.parameters(), lr=1e-3), loss_fn, 256, cfg,
                      GPU, checkpoint=checkpoint)
    losses = [r["loss"] for r in result.history]
    assert losses[-1] < losses[0]
    assert (mixed_layers(model) > 0) == (precision == "bf16-mixed")
    saved = torch.load(tmp_path / "checkpoint.pt", map_location="cpu", weights_only=True)
    cpu_model = build_network("cae", (1, 28, 28), {"embedding_dim": 10})
    cpu_model.load_state_dict(saved["model"])  # a GPU checkpoint loads on the CPU
    for name, value in cpu_model.state_dict().items():
        torch.testing.assert_close(value, model.state_dict()[name].cpu(), rtol=0, atol=0)
