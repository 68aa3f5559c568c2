"""The embed stage writes exactly ``model.encode(X)`` of the saved model, row for row."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch

from stages import embed
from stages.nets import build_network
from stages.plumbing.artifacts import read_arrays, write_arrays
from stages.runtime.models import save_model
from stages.runtime.train import map_batches

N = 23  # not a multiple of the batch size below: the last batch is short


@pytest.mark.parametrize(("net", "arch", "input_shape"), [
    ("sae", {"hidden": [8, 3]}, (1, 4, 4)),
    ("cae", {"channels": [2, 3, 4], "embedding_dim": 3}, (1, 16, 16)),
])
def test_embedding_is_the_encoder_of_the_saved_model(tmp_path: Path, monkeypatch, net: str,
                                                     arch: dict, input_shape: tuple) -> None:
    rng = np.random.default_rng(0)
    X = rng.random((N, *input_shape), dtype=np.float32)
    y = np.arange(N, dtype=np.int64) % 3
    data = tmp_path / "data.h5"
    write_arrays(data, {"X": X, "y": y}, {"name": "tiny", "n_clusters": 3,
                                          "input_shape": list(input_shape)})
    torch.manual_seed(5)  # weights no fresh build of the network would have
    model = build_network(net, input_shape, arch)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    meta = {"wall_s": 12.5, "provenance": {"config_hash": "cafe", "seed": 0}}
    save_model(tmp_path / "model.pt", net, input_shape, arch, model.state_dict(), meta)

    # batches of 5 (the stage's default, 4096, would take the whole set in one)
    monkeypatch.setattr(embed, "map_batches", functools.partial(map_batches, batch_size=5))
    out = tmp_path / "embed" / "seed0.h5"
    embed.run(embed.build_parser().parse_args(
        ["--data", str(data), "--model", str(tmp_path / "model.pt"), "--out", str(out),
         "--device", "cpu", "--threads", "1"]))

    arrays, attrs = read_arrays(out, required=["Z"])
    with torch.no_grad():
        expected = model.eval().encode(torch.from_numpy(X)).numpy()
    assert arrays["Z"].dtype == np.float32 and arrays["Z"].shape == (N, 3)
    np.testing.assert_allclose(arrays["Z"], expected, rtol=0, atol=1e-6)
    assert {k: attrs[k] for k in ("stage", "dataset", "n_clusters", "provenance")} == {
        "stage": "embed", "dataset": "tiny", "n_clusters": 3, "provenance": meta["provenance"]}
    assert attrs["timings"]["pretrain"] == 12.5 and attrs["timings"]["embed"] > 0
    assert attrs["device"].startswith("cpu (")
