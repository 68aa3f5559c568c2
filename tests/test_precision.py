"""precision: bf16-mixed networks (stages/runtime/precision.py): which layers compute in bf16, that
everything else stays fp32, and that the config reaches pretraining, embedding and fine-tuning.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from snakemake.utils import validate as schema_validate
from snakemake_interface_common.exceptions import WorkflowError
from torch import nn

from stages import embed, pretrain
from stages.nets import build_network
from stages.plumbing import config as stage_config
from stages.plumbing.artifacts import read_arrays, write_arrays
from stages.plumbing.errors import ConfigError
from stages.runtime.models import load_model
from stages.runtime.precision import (
    MixedConv2d,
    MixedConvTranspose2d,
    MixedLinear,
    check_precision,
    mixed_layers,
    use_precision,
)
from stages.runtime.train import LoopConfig, loop_settings, run_loop

CPU = torch.device("cpu")
REPO = Path(__file__).resolve().parents[1]


def _cae() -> nn.Module:
    torch.manual_seed(0)
    return build_network("cae", (1, 16, 16), {"channels": [2, 3, 4], "embedding_dim": 3})


def test_unknown_precision_is_an_error_naming_the_choices() -> None:
    assert check_precision(32) == "32" and check_precision("bf16-mixed") == "bf16-mixed"
    with pytest.raises(ConfigError, match="unknown precision '16-mixed'; valid choices: 32, "
                                          "bf16-mixed"):
        check_precision("16-mixed")
    with pytest.raises(ConfigError, match="valid choices"):
        loop_settings({"precision": "fp16"})


def test_bf16_mixed_switches_every_matmul_and_conv_layer_and_keeps_the_weights() -> None:
    model = _cae()
    keys = {k: v.clone() for k, v in model.state_dict().items()}
    n_layers = sum(isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))
                   for m in model.modules())
    use_precision(model, "bf16-mixed", CPU)
    kinds = {type(m) for m in model.modules()}
    assert {MixedLinear, MixedConv2d, MixedConvTranspose2d} <= kinds
    assert not kinds & {nn.Linear, nn.Conv2d, nn.ConvTranspose2d}
    assert mixed_layers(model) == n_layers > 0
    state = model.state_dict()
    assert list(state) == list(keys)  # checkpoints and model files keep their keys
    assert all(torch.equal(state[k], keys[k]) and state[k].dtype == torch.float32 for k in keys)
    assert mixed_layers(copy.deepcopy(model)) == n_layers
    use_precision(model, "bf16-mixed", CPU)  # idempotent
    assert mixed_layers(model) == n_layers
    use_precision(model, "32", CPU)  # reversible
    assert mixed_layers(model) == 0
    assert {type(m) for m in model.modules()} & {MixedLinear, MixedConv2d} == set()


def test_a_mixed_layer_computes_in_bf16_and_returns_fp32() -> None:
    torch.manual_seed(1)
    layer = nn.Linear(64, 32)
    x = torch.randn(8, 64)
    fp32 = layer(x)
    use_precision(layer, "bf16-mixed", CPU)
    out = layer(x)
    by_hand = F.linear(x.bfloat16(), layer.weight.bfloat16(), layer.bias.bfloat16()).float()
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, by_hand, rtol=0, atol=0)
    assert not torch.equal(out, fp32)  # bf16 inputs: not the fp32 product ...
    torch.testing.assert_close(out, fp32, rtol=0.05, atol=0.05)  # ... but close to it
    out.sum().backward()
    assert layer.weight.grad.dtype == torch.float32  # fp32 master weights


def test_the_loss_sees_fp32_outputs_and_training_under_bf16_mixed_lowers_it() -> None:
    model = build_network("sae", (1, 4, 4), {"hidden": [8, 3]})
    x = torch.rand(64, 1, 4, 4)
    seen: list[torch.dtype] = []

    def loss_fn(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        z, x_hat = model(x[idx])
        seen.extend([z.dtype, x_hat.dtype])
        return {"loss": ((x_hat - x[idx]) ** 2).mean()}

    cfg = LoopConfig(batch_size=16, max_steps=200, log_every=20, precision="bf16-mixed")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    result = run_loop(model, optimizer, loss_fn, 64, cfg, CPU)
    assert mixed_layers(model) > 0  # the loop switched the model it trains
    assert set(seen) == {torch.float32}
    losses = [row["loss"] for row in result.history]
    assert losses[-1] < 0.5 * losses[0]


def _config(**top) -> dict:
    import yaml

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config.update(top)
    schema_validate(config, str(REPO / "workflow/schemas/config.schema.yaml"))
    return config


def test_the_config_precision_reaches_every_trained_recipe_and_no_baseline() -> None:
    default = _config(schedule="paper")
    assert stage_config.method_recipe(default, "dec")["precision"] == "32"
    config = _config(schedule="paper", precision="bf16-mixed")
    assert stage_config.method_recipe(config, "dec")["precision"] == "bf16-mixed"
    assert stage_config.autoencoder_recipe(config, "sae")["precision"] == "bf16-mixed"
    assert "precision" not in stage_config.method_recipe(config, "kmeans")
    assert stage_config.method_recipe(_config(precision=32), "depict")["precision"] == "32"
    with pytest.raises(WorkflowError, match="'16-mixed' is not one of"):
        _config(precision="16-mixed")


def test_a_recipe_precision_for_one_schedule_wins_there_and_the_config_s_elsewhere() -> None:
    quick = _config()  # config.yaml: sae and the DEC head auto when quick, null when paper
    assert stage_config.autoencoder_recipe(quick, "sae")["precision"] == "auto"
    assert stage_config.method_recipe(quick, "dcec")["precision"] == "auto"
    assert stage_config.autoencoder_recipe(quick, "cae")["precision"] == "32"
    assert stage_config.method_recipe(quick, "depict")["precision"] == "32"
    paper = _config(schedule="paper", precision="bf16-mixed")  # null: the top level's
    assert stage_config.autoencoder_recipe(paper, "sae")["precision"] == "bf16-mixed"
    own = _config(schedule="paper")
    own["autoencoders"]["cae"]["precision"] = "bf16-mixed"  # one value for both schedules
    assert stage_config.autoencoder_recipe(own, "cae")["precision"] == "bf16-mixed"
    own["autoencoders"]["cae"]["precision"] = {"paper": "fp16", "quick": None}
    with pytest.raises(WorkflowError, match="precision"):
        schema_validate(own, str(REPO / "workflow/schemas/config.schema.yaml"))


@pytest.mark.parametrize(("flags", "expected"), [
    ("fpu avx2 avx512f avx512_bf16", "bf16-mixed"), ("fpu avx2 amx_bf16 amx_tile", "bf16-mixed"),
    ("fpu avx2 avx512f", "32"), (None, "32")])
def test_auto_is_bf16_mixed_only_on_a_cpu_with_native_bf16(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flags: str | None, expected: str) -> None:
    from stages.runtime import precision

    info = tmp_path / "cpuinfo"
    if flags is not None:
        info.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    read = precision.cpu_flags
    assert read(str(info)) == frozenset((flags or "").split())  # no file: no flags
    monkeypatch.setattr(precision, "cpu_flags", lambda: read(str(info)))
    assert precision.effective_precision("auto", CPU) == expected
    assert precision.effective_precision("32", CPU) == "32"  # only auto depends on the CPU
    model = use_precision(_cae(), "auto", CPU)
    assert (mixed_layers(model) > 0) == (expected == "bf16-mixed")


def test_pretrain_and_embed_run_at_the_recipe_precision(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.random((40, 1, 4, 4), dtype=np.float32)
    data = tmp_path / "data.h5"
    write_arrays(data, {"X": X, "y": np.arange(40) % 2},
                 {"name": "tiny", "n_clusters": 2, "input_shape": [1, 4, 4]})
    recipe = {"name": "sae", "net": "sae", "arch": {"hidden": [8, 3]}, "epochs": 2,
              "batch_size": 10, "optimizer": {"name": "adam", "lr": 1e-3},
              "precision": "bf16-mixed"}
    out = tmp_path / "pretrain"
    import json

    pretrain.run(pretrain.build_parser().parse_args(
        ["--data", str(data), "--params", json.dumps(recipe), "--out-dir", str(out),
         "--device", "cpu", "--threads", "1"]))
    model, payload = load_model(out / "model.pt", CPU)  # plain layers: keys unchanged
    assert payload["meta"]["provenance"]["config"]["precision"] == "bf16-mixed"
    embed.run(embed.build_parser().parse_args(
        ["--data", str(data), "--model", str(out / "model.pt"), "--out", str(tmp_path / "z.h5"),
         "--device", "cpu", "--threads", "1"]))
    z = read_arrays(tmp_path / "z.h5", required=["Z"])[0]["Z"]
    with torch.no_grad():
        fp32 = model.eval().encode(torch.from_numpy(X)).numpy()
        mixed = use_precision(model, "bf16-mixed", CPU).encode(torch.from_numpy(X)).numpy()
    assert z.dtype == np.float32
    np.testing.assert_array_equal(z, mixed)  # embedded in bf16, as pretrained
    assert not np.array_equal(z, fp32)


def test_compile_reaches_every_trained_recipe_only_when_it_is_on() -> None:
    default = _config()
    assert "compile" not in stage_config.method_recipe(default, "dec")  # job keys unchanged
    assert "compile" not in stage_config.autoencoder_recipe(default, "sae")
    config = _config(compile=True)
    assert stage_config.method_recipe(config, "dcec")["compile"] is True
    assert stage_config.autoencoder_recipe(config, "cae")["compile"] is True
    assert loop_settings(stage_config.method_recipe(config, "dec"))["compile"] is True
    assert "compile" not in stage_config.method_recipe(config, "kmeans")
    with pytest.raises(WorkflowError, match="is not of type 'boolean'"):
        _config(compile="yes")
