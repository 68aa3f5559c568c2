"""Autoencoders of the DEC family (DCEC paper, Guo et al. 2017, Sect. 4.2).

* :class:`StackedAutoencoder` (SAE): fully connected d-500-500-2000-10, mirrored decoder, ReLU on
  internal layers, linear input, embedding and output layers [paper].
  SAIP's DAE (Peng et al. 2020) is the same network with ``centre_input`` on (the paper's
  "decentralization"); ``embedding_activation`` / ``output_activation`` ``sigmoid`` give the
  literal reading of its HOE(CNN) paragraph (see ``stages/methods/saip/pretrain.py``).
* :class:`ConvAutoencoder` (CAE): conv32(5,s2)-conv64(5,s2)-conv128(3,s2)-FC10, mirrored decoder
  with transposed convolutions; 'same' padding except conv3, which is 'valid' when H % 8 != 0
  (MNIST 28 -> 14 -> 7 -> 3), as in the authors' Keras code. No BatchNorm, no dropout [paper].
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from stages.nets.shapes import check_conv_input, transposed_output_padding
from stages.plumbing.errors import ConfigError

#: activations allowed at the embedding and output layers of :class:`StackedAutoencoder`
END_ACTIVATIONS = ("linear", "sigmoid")

#: weight initialisations of :class:`StackedAutoencoder`
SAE_INITS = ("glorot-uniform", "fan-in-uniform")


def _mlp(dims: Sequence[int], last: str = "linear") -> nn.Sequential:
    """Linear layers ``dims[0] -> ... -> dims[-1]`` with ReLU between them and ``last``
    (``linear`` or ``sigmoid``) after the final one."""
    if last not in END_ACTIVATIONS:
        raise ConfigError(f"unknown end activation '{last}'; valid choices: "
                          f"{', '.join(END_ACTIVATIONS)}")
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        layers.append(nn.Linear(d_in, d_out))
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
    if last == "sigmoid":  # no parameters: state_dict keys are the same as without it
        layers.append(nn.Sigmoid())
    return nn.Sequential(*layers)


class StackedAutoencoder(nn.Module):
    """Fully connected autoencoder ``d-h1-...-hk-e`` with the mirrored decoder.

    Args:
        input_shape: shape of one sample; it is flattened, so (C,H,W) images work too.
        hidden: widths of the hidden layers; the last is the embedding (default 500-500-2000-10).
        embedding_activation, output_activation: ``linear`` (default, DEC/DCEC) or ``sigmoid``
            (SAIP's literal reading, methods.md §4.1).
        centre_input: subtract a stored data mean (buffer ``input_mean`` (D,), set with
            :meth:`set_input_mean` before training) from the input and add it back to the
            reconstruction, so the layers see mean-centred data (SAIP's "decentralization").
        init: weight initialisation, one of :data:`SAE_INITS` (biases zero): ``glorot-uniform``
            (Keras' default) or ``fan-in-uniform`` (U(-1/sqrt(fan_in), 1/sqrt(fan_in)), the
            ``VarianceScaling(1/3, 'fan_in', 'uniform')`` of DEC-keras' MNIST recipe).
    """

    def __init__(self, input_shape: Sequence[int], hidden: Sequence[int] = (500, 500, 2000, 10),
                 embedding_activation: str = "linear", output_activation: str = "linear",
                 centre_input: bool = False, init: str = "glorot-uniform"):
        super().__init__()
        self.input_shape = tuple(input_shape)
        d = 1
        for s in self.input_shape:
            d *= int(s)
        self.embedding_dim = int(hidden[-1])
        self.encoder = _mlp([d, *hidden], embedding_activation)
        self.decoder = _mlp([*reversed(hidden), d], output_activation)
        self.centre_input = bool(centre_input)
        if self.centre_input:  # only then, so the state_dict of the other recipes is unchanged
            self.register_buffer("input_mean", torch.zeros(d))
        if init not in SAE_INITS:
            raise ConfigError(f"unknown init '{init}'; valid choices: {', '.join(SAE_INITS)}")
        keras_init_(self, fan_in_uniform=init == "fan-in-uniform")

    def set_input_mean(self, x: torch.Tensor) -> None:
        """Store the mean (D,) of the data x (N, *input_shape) when ``centre_input`` is on."""
        if self.centre_input:
            with torch.no_grad():
                self.input_mean.copy_(x.flatten(1).mean(dim=0))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, *input_shape) -> z: (B, embedding_dim)."""
        x = x.flatten(1)
        return self.encoder(x - self.input_mean if self.centre_input else x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, embedding_dim) -> x_hat: (B, *input_shape)."""
        x_hat = self.decoder(z)
        if self.centre_input:
            x_hat = x_hat + self.input_mean
        return x_hat.view(z.shape[0], *self.input_shape)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (z (B, e), x_hat (B, *input_shape))."""
        z = self.encode(x)
        return z, self.decode(z)


def _conv_out(size: int, kernel: int, stride: int, same: bool) -> int:
    return -(-size // stride) if same else (size - kernel) // stride + 1


class ConvAutoencoder(nn.Module):
    """DCEC's convolutional autoencoder for (C, H, W) images with H, W >= 16.

    Args:
        input_shape: (C, H, W).
        channels: filters of the three conv layers (default 32, 64, 128).
        embedding_dim: width of the linear embedding layer (default 10 = number of clusters).
    """

    def __init__(self, input_shape: Sequence[int], channels: Sequence[int] = (32, 64, 128),
                 embedding_dim: int = 10):
        super().__init__()
        check_conv_input(input_shape)
        c_in, h, w = (int(s) for s in input_shape)
        self.input_shape = (c_in, h, w)
        self.embedding_dim = int(embedding_dim)
        c1, c2, c3 = (int(c) for c in channels)
        same3 = h % 8 == 0 and w % 8 == 0
        pad3 = 1 if same3 else 0
        sizes_h = [h, _conv_out(h, 5, 2, True)]
        sizes_h.append(_conv_out(sizes_h[-1], 5, 2, True))
        sizes_h.append(_conv_out(sizes_h[-1], 3, 2, same3))
        sizes_w = [w, _conv_out(w, 5, 2, True)]
        sizes_w.append(_conv_out(sizes_w[-1], 5, 2, True))
        sizes_w.append(_conv_out(sizes_w[-1], 3, 2, same3))
        self._code_shape = (c3, sizes_h[3], sizes_w[3])
        flat = c3 * sizes_h[3] * sizes_w[3]
        self.encoder = nn.Sequential(
            nn.Conv2d(c_in, c1, 5, stride=2, padding=2), nn.ReLU(),
            nn.Conv2d(c1, c2, 5, stride=2, padding=2), nn.ReLU(),
            nn.Conv2d(c2, c3, 3, stride=2, padding=pad3), nn.ReLU(),
            nn.Flatten(), nn.Linear(flat, self.embedding_dim),
        )
        self.decoder_fc = nn.Sequential(nn.Linear(self.embedding_dim, flat), nn.ReLU())
        self.decoder_conv = nn.Sequential(
            nn.ConvTranspose2d(c3, c2, 3, stride=2, padding=pad3,
                               output_padding=_pads(sizes_h, sizes_w, 3, 3, pad3)),
            nn.ReLU(),
            nn.ConvTranspose2d(c2, c1, 5, stride=2, padding=2,
                               output_padding=_pads(sizes_h, sizes_w, 2, 5, 2)),
            nn.ReLU(),
            nn.ConvTranspose2d(c1, c_in, 5, stride=2, padding=2,
                               output_padding=_pads(sizes_h, sizes_w, 1, 5, 2)),
        )
        keras_init_(self)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) -> z: (B, embedding_dim)."""
        return self.encoder(x)

    @property
    def decoder(self) -> nn.ModuleList:
        """The decoding layers (decoder_fc, decoder_conv)."""
        return nn.ModuleList([self.decoder_fc, self.decoder_conv])

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, embedding_dim) -> x_hat: (B, C, H, W)."""
        h = self.decoder_fc(z).view(z.shape[0], *self._code_shape)
        return self.decoder_conv(h)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (z (B, e), x_hat (B, C, H, W))."""
        z = self.encode(x)
        return z, self.decode(z)


def keras_init_(module: nn.Module, fan_in_uniform: bool = False) -> nn.Module:
    """Glorot-uniform weights and zero biases (Keras defaults, as in the authors' code); with
    ``fan_in_uniform`` the weights are U(-1/sqrt(fan_in), 1/sqrt(fan_in)) instead."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            if fan_in_uniform:
                limit = 1.0 / math.sqrt(nn.init._calculate_fan_in_and_fan_out(m.weight)[0])
                nn.init.uniform_(m.weight, -limit, limit)
            else:
                nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    return module


def _pads(sizes_h: list[int], sizes_w: list[int], level: int, kernel: int,
          padding: int) -> tuple[int, int]:
    """(h, w) output_padding of the transposed conv that undoes encoder conv ``level`` (1-based)."""
    return (transposed_output_padding(sizes_h[level - 1], sizes_h[level], kernel, padding),
            transposed_output_padding(sizes_w[level - 1], sizes_w[level], kernel, padding))
