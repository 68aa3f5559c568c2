"""The DEPICT authors' Lasagne weights in our network (stages.methods.depict.lasagne_weights):
each layer computes what the Lasagne layer computes (true convolution, its transpose, x @ W),
checked against scipy's convolution; the command's files; bad files refused."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.signal import convolve2d

from stages.data import read_dataset
from stages.methods.depict import lasagne_weights as lw
from stages.nets import build_network
from stages.plumbing.artifacts import write_arrays
from stages.plumbing.errors import DataFileError
from stages.runtime.models import load_model
from stages.runtime.train import validation_split

SHAPE = (1, 28, 28)          # MNIST: conv1 4x4 stride 2 pad 0 (28 -> 13), conv2 5x5/2/2 (-> 7)
ARCH = {"embedding_dim": 3, "maps": 2, "dropouts": [0.1, 0.1, 0.0]}


def _lasagne_values(seed: int = 0) -> list[np.ndarray]:
    """Random arrays in the layout and order of Lasagne's get_all_param_values(decoder)."""
    rng = np.random.default_rng(seed)
    shapes = [(2, 1, 4, 4), (2,), (2, 2, 5, 5), (2,), (98, 3), (3,), (3, 98), (98,),
              (2, 2, 5, 5), (2,), (2, 1, 4, 4), (1,)]
    return [rng.normal(scale=0.3, size=s).astype(np.float32) for s in shapes]


def _net_with(values: list[np.ndarray]) -> torch.nn.Module:
    net = build_network("depict", SHAPE, ARCH)
    net.load_state_dict(lw.state_dict_from_lasagne(values, net.state_dict()))
    return net.eval()


def _true_conv(v: np.ndarray, w: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """Lasagne Conv2DLayer(flip_filters=True) without bias: v (C, H, W), w (F, C, k, k) ->
    (F, H', W'), a true (flipped-kernel) convolution, zero padding ``pad``, then ``stride``."""
    v = np.pad(v, ((0, 0), (pad, pad), (pad, pad)))
    return np.stack([sum(convolve2d(v[c], w[f, c], mode="valid") for c in range(v.shape[0]))
                     [::stride, ::stride] for f in range(w.shape[0])])


def test_convolutions_compute_lasagnes_true_convolution():
    values = _lasagne_values()
    net = _net_with(values)
    x = torch.rand(1, *SHAPE)
    with torch.no_grad():
        h0 = net.scale_input(x)
        a1 = net.conv1(h0)[0].numpy()
        h1 = net.encoder_layer(1, h0)
        a2 = net.conv2(h1)[0].numpy()
    expect1 = _true_conv(h0[0].numpy(), values[0], 2, 0) + values[1][:, None, None]
    expect2 = _true_conv(h1[0].numpy(), values[2], 2, 2) + values[3][:, None, None]
    np.testing.assert_allclose(a1, expect1, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(a2, expect2, rtol=1e-4, atol=1e-5)
    # without the flip the layer would correlate: a different output
    assert not np.allclose(a1, _true_conv(h0[0].numpy(), values[0][..., ::-1, ::-1], 2, 0)
                           + values[1][:, None, None], atol=1e-3)


@pytest.mark.parametrize(("layer", "index", "in_shape", "stride", "pad"), [
    ("deconv2", 8, (2, 7, 7), 2, 2),     # 7x7 -> 13x13, crop 2
    ("deconv1", 10, (2, 13, 13), 2, 0),  # 13x13 -> 28x28, crop 0
])
def test_transposed_convolutions_are_the_adjoint_of_lasagnes_convolution(layer, index, in_shape,
                                                                         stride, pad):
    """Lasagne's Deconv2DLayer(flip_filters=False) with W (in, out, k, k) is the transpose of
    the true convolution with W read as (out -> in): <deconv(h), v> = <conv(v), h> for all h, v
    (biases zeroed)."""
    values = _lasagne_values(1)
    values[index + 1] = np.zeros_like(values[index + 1])
    module = getattr(_net_with(values), layer)
    rng = np.random.default_rng(2)
    h = rng.normal(size=in_shape).astype(np.float32)
    with torch.no_grad():
        out = module(torch.from_numpy(h)[None])[0].numpy()
    v = rng.normal(size=out.shape).astype(np.float32)
    w_as_conv = values[index]                       # (in, out, k, k): maps v's out -> in
    conv_v = _true_conv(v, w_as_conv, stride, pad)
    assert conv_v.shape == h.shape
    assert float((out * v).sum()) == pytest.approx(float((conv_v * h).sum()), rel=1e-4)


def test_dense_layers_compute_x_times_lasagnes_w():
    values = _lasagne_values()
    net = _net_with(values)
    h = torch.randn(4, 98)
    z = torch.randn(4, 3)
    with torch.no_grad():
        np.testing.assert_allclose(net.fc(h).numpy(), h.numpy() @ values[4] + values[5],
                                   rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(net.defc(z).numpy(), z.numpy() @ values[6] + values[7],
                                   rtol=1e-5, atol=1e-5)


def _data(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    x = rng.random((60, *SHAPE)).astype(np.float32)
    path = tmp_path / "data.h5"
    write_arrays(path, {"X": x, "y": y}, {"name": "tiny", "n_clusters": 3,
                                          "input_shape": list(SHAPE)})
    return path


def test_command_writes_the_pretrain_files_and_reports_the_clean_mda_loss(tmp_path):
    values = _lasagne_values()
    weights = tmp_path / "params_tiny_values_best.pickle"
    weights.write_bytes(pickle.dumps(values, protocol=2))    # the oldest a Lasagne run wrote
    data, out = _data(tmp_path), tmp_path / "pretrain"
    args = lw.build_parser().parse_args([str(weights), "--data", str(data), "--out-dir",
                                         str(out), "--arch", '{"maps": 2}', "--seed", "3"])
    report = lw.run(args)
    model, payload = load_model(out / "model.pt", torch.device("cpu"))
    expected = _net_with(values)
    for name, tensor in expected.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor)
    x = torch.as_tensor(read_dataset(data).X)
    _, val = validation_split(60, 0.1, 3)
    assert report["heldout_loss"] == pytest.approx(lw.mda_losses(expected, x[val], 0.1)["loss"])
    assert report["all_input_term"] < report["all_loss"]     # the hidden terms add to it
    assert payload["meta"]["authors_weights"]["authors_mnist_test_file"] is False
    history = (out / "history.csv").read_text().splitlines()
    assert history[0].startswith("kind,phase,step,epoch,loss") and len(history) == 2
    assert (out / "snapshots.h5").exists()


def test_bad_files_are_refused_with_what_is_wrong(tmp_path):
    pointer = tmp_path / "lfs.pickle"
    pointer.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\n")
    with pytest.raises(DataFileError, match="not a pickle of numpy arrays"):
        lw.read_lasagne_values(pointer)
    evil = tmp_path / "evil.pickle"
    evil.write_bytes(pickle.dumps([np.zeros(2), Path("x")]))
    with pytest.raises(DataFileError, match="refusing to load pathlib"):
        lw.read_lasagne_values(evil)
    with pytest.raises(DataFileError, match="not found; copy results/DEPICT/params"):
        lw.read_lasagne_values(tmp_path / "missing.pickle")
    net = build_network("depict", SHAPE, ARCH)
    with pytest.raises(DataFileError, match="expected the 12 arrays"):
        lw.state_dict_from_lasagne(_lasagne_values()[:10], net.state_dict())
    wide = build_network("depict", SHAPE, {**ARCH, "maps": 3})
    with pytest.raises(DataFileError, match=r"conv1.weight: the file's array becomes "
                                            r"\(2, 1, 4, 4\), the network needs \(3, 1, 4, 4\)"):
        lw.state_dict_from_lasagne(_lasagne_values(), wide.state_dict())
