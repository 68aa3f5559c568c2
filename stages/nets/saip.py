"""SAIP's convolutional autoencoder, HOE(CNN) of Peng et al. (TNNLS 2020), Sect. V-B.

Encoder conv(64, 5)-pool(2)-conv(32, 5)-pool(2)-FC(1024)-FC(d) [paper]; the decoder mirrors it
[paper: "the decoder is symmetric to the encoder"]. ReLU everywhere except the last encoder
layer (the embedding) and the last decoder layer (the reconstruction), which are sigmoid
[paper]. Choices where the paper is silent:

* [default] 'same' padding of the 5x5 convolutions, so the two poolings take 28 -> 14 -> 7;
  odd sides are floored by the pooling and restored by the upsampling.
* [default] the decoder undoes each pooling with nearest-neighbour upsampling to the exact size
  the encoder had there, followed by a 5x5 'same' convolution: FC(1024)-FC(32*h*w)-up-conv(64,5)
  -up-conv(C,5)-sigmoid.
* Glorot-uniform weights and zero biases, as the other networks here (Keras defaults).
* [default] ``mean_output_bias``: a per-pixel bias (C, H, W) before the output sigmoid, started
  at the logit of the training data's mean image (:meth:`set_input_mean`), the paper's
  "decentralization" applied to the output, as the MLP DAE adds its input mean back; why,
  measured: docs/notes/saip.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from stages.nets.dec import keras_init_
from stages.nets.layout import channels_last
from stages.nets.shapes import check_saip_cnn_input


class SaipConvAutoencoder(nn.Module):
    """HOE(CNN)'s autoencoder for (C, H, W) images with H, W >= 4.

    Args:
        input_shape: (C, H, W).
        channels: filters of the two conv layers (default 64, 32 [paper]).
        hidden: width of the fully connected layer (default 1024 [paper]).
        embedding_dim: width of the sigmoid embedding layer (default 10 [paper]).
        mean_output_bias: add a per-pixel bias ``output_bias`` (C, H, W) before the output
            sigmoid, set to the logit of the data's mean image by :meth:`set_input_mean`.
    """

    def __init__(self, input_shape: Sequence[int], channels: Sequence[int] = (64, 32),
                 hidden: int = 1024, embedding_dim: int = 10, mean_output_bias: bool = False):
        super().__init__()
        check_saip_cnn_input(input_shape)
        c_in, h, w = (int(s) for s in input_shape)
        self.input_shape = (c_in, h, w)
        self.embedding_dim = int(embedding_dim)
        c1, c2 = (int(c) for c in channels)
        self._sizes = ((h, w), (h // 2, w // 2), (h // 4, w // 4))
        self._code_shape = (c2, h // 4, w // 4)
        flat = c2 * (h // 4) * (w // 4)
        self.encoder = nn.Sequential(
            nn.Conv2d(c_in, c1, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(flat, int(hidden)), nn.ReLU(),
            nn.Linear(int(hidden), self.embedding_dim), nn.Sigmoid(),
        )
        self.decoder_fc = nn.Sequential(
            nn.Linear(self.embedding_dim, int(hidden)), nn.ReLU(),
            nn.Linear(int(hidden), flat), nn.ReLU(),
        )
        self.decoder_conv = nn.Sequential(
            nn.Upsample(size=self._sizes[1], mode="nearest"),
            nn.Conv2d(c2, c1, 5, padding=2), nn.ReLU(inplace=True),
            nn.Upsample(size=self._sizes[0], mode="nearest"),
            nn.Conv2d(c1, c_in, 5, padding=2), nn.Sigmoid(),
        )
        self.mean_output_bias = bool(mean_output_bias)
        if self.mean_output_bias:  # only then, so the state_dict of the plain recipe is unchanged
            self.output_bias = nn.Parameter(torch.zeros(c_in, h, w))
        keras_init_(self)

    def set_input_mean(self, x: torch.Tensor) -> None:
        """With ``mean_output_bias``: ``output_bias`` = logit of the mean image of x (N, C, H, W),
        the mean clipped to [1e-3, 1 - 1e-3]; otherwise nothing."""
        if self.mean_output_bias:
            with torch.no_grad():
                self.output_bias.copy_(torch.logit(x.mean(dim=0).clamp(1e-3, 1 - 1e-3)))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) -> z: (B, embedding_dim) in (0, 1).

        The maps are kept channels-last (:func:`~stages.nets.layout.channels_last`; a training
        step 24% faster on one CPU thread, and max-pooling the first map 7x faster than
        channels-first, measured)."""
        return self.encoder(channels_last(x))

    @property
    def decoder(self) -> nn.ModuleList:
        """The decoding layers (decoder_fc, decoder_conv)."""
        return nn.ModuleList([self.decoder_fc, self.decoder_conv])

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, embedding_dim) -> x_hat: (B, C, H, W) in (0, 1)."""
        h = self.decoder_fc(z).view(z.shape[0], *self._code_shape)
        h = channels_last(h)
        if not self.mean_output_bias:
            return self.decoder_conv(h)
        return torch.sigmoid(self.decoder_conv[:-1](h) + self.output_bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (z (B, e), x_hat (B, C, H, W))."""
        z = self.encode(x)
        return z, self.decode(z)
