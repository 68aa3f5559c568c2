"""DEPICT's convolutional autoencoder (Ghasedi Dizaji et al., ICCV 2017, Sect. 3.3 and Table 5).

Encoder: conv(50 maps) - LeakyReLU - conv(50 maps) - LeakyReLU - FC(K) - tanh, the embedding
size K being the number of clusters [paper]. Decoder: FC - LeakyReLU - transposed conv - LeakyReLU
- transposed conv - tanh, mirroring the encoder, so that decoder layer l reconstructs encoder
layer l (the layer-wise reconstruction loss of Eq. 12). Kernels, strides and paddings per image
size come from Table 5 (:data:`stages.nets.shapes.DEPICT_LAYERS`). LeakyReLU slope 0.01 [code],
Glorot-uniform weights [paper], zero biases.

One set of weights serves two pathways: the *clean* one (no dropout, ever) and the *corrupted*
one, which applies dropout to the input and to the conv outputs (rates ``dropouts``, [code]
0.1, 0.1, 0.0). Dropout is applied functionally, so the clean pathway is clean in train mode too.
Inputs in [0, 1] are mapped to ``input_range`` (default [-1, 1], as the tanh output needs) by the
network itself, so every stage feeds it the prepared data unchanged; the reconstruction targets
are the mapped inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from stages.nets.dec import keras_init_
from stages.nets.shapes import (
    check_depict_input,
    conv_output_size,
    depict_layers,
    transposed_output_padding,
)


class DepictAutoencoder(nn.Module):
    """DEPICT's two-conv-layer autoencoder for (C, H, W) images.

    Args:
        input_shape: (C, H, W) with H, W >= 8.
        embedding_dim: size of the tanh embedding (the number of clusters).
        maps: feature maps of both conv layers (50 [paper]).
        layers: ((kernel, stride, padding), (kernel, stride, padding)) of the two conv layers;
            default from the paper's Table 5 by image side.
        dropouts: dropout rates of the corrupted pathway on the input, conv1 and conv2 outputs.
        leaky_slope: negative slope of the LeakyReLUs.
        input_range: (low, high) that inputs in [0, 1] are mapped to.
    """

    def __init__(self, input_shape: Sequence[int], embedding_dim: int = 10, maps: int = 50,
                 layers: Sequence[Sequence[int]] | None = None,
                 dropouts: Sequence[float] = (0.1, 0.1, 0.0), leaky_slope: float = 0.01,
                 input_range: Sequence[float] = (-1.0, 1.0)):
        super().__init__()
        check_depict_input(input_shape)
        c_in, h, w = (int(s) for s in input_shape)
        self.input_shape = (c_in, h, w)
        self.embedding_dim = int(embedding_dim)
        (k1, s1, p1), (k2, s2, p2) = layers if layers is not None else depict_layers(h)
        if len(dropouts) != 3:
            raise ValueError(f"dropouts needs three rates (input, conv1, conv2); got {dropouts}")
        self.dropouts = tuple(float(d) for d in dropouts)
        self.leaky_slope = float(leaky_slope)
        self.input_low, self.input_high = (float(v) for v in input_range)
        h1, w1 = conv_output_size(h, k1, s1, p1), conv_output_size(w, k1, s1, p1)
        h2, w2 = conv_output_size(h1, k2, s2, p2), conv_output_size(w1, k2, s2, p2)
        if min(h2, w2) < 1:
            raise ValueError(f"DEPICT layers {layers} shrink {h}x{w} images to nothing")
        self._code_shape = (maps, h2, w2)
        self.conv1 = nn.Conv2d(c_in, maps, k1, stride=s1, padding=p1)
        self.conv2 = nn.Conv2d(maps, maps, k2, stride=s2, padding=p2)
        self.fc = nn.Linear(maps * h2 * w2, self.embedding_dim)
        self.defc = nn.Linear(self.embedding_dim, maps * h2 * w2)
        self.deconv2 = nn.ConvTranspose2d(
            maps, maps, k2, stride=s2, padding=p2,
            output_padding=(transposed_output_padding(h1, h2, k2, p2, s2),
                            transposed_output_padding(w1, w2, k2, p2, s2)))
        self.deconv1 = nn.ConvTranspose2d(
            maps, c_in, k1, stride=s1, padding=p1,
            output_padding=(transposed_output_padding(h, h1, k1, p1, s1),
                            transposed_output_padding(w, w1, k1, p1, s1)))
        keras_init_(self)

    def scale_input(self, x: torch.Tensor) -> torch.Tensor:
        """x in [0, 1] (B, C, H, W) -> the network's input range."""
        return x * (self.input_high - self.input_low) + self.input_low

    def encoder_layer(self, level: int, h: torch.Tensor) -> torch.Tensor:
        """Encoder layer ``level`` (1: conv1, 2: conv2, 3: FC embedding) applied to h."""
        if level == 1:
            return F.leaky_relu(self.conv1(h), self.leaky_slope)
        if level == 2:
            return F.leaky_relu(self.conv2(h), self.leaky_slope)
        if level == 3:
            return torch.tanh(self.fc(h.flatten(1)))
        raise ValueError(f"DEPICT has encoder layers 1, 2, 3; got {level}")

    def decoder_layer(self, level: int, h: torch.Tensor) -> torch.Tensor:
        """The decoder layer that maps encoder layer ``level``'s output back to its input."""
        if level == 3:
            return F.leaky_relu(self.defc(h), self.leaky_slope).view(h.shape[0],
                                                                     *self._code_shape)
        if level == 2:
            return F.leaky_relu(self.deconv2(h), self.leaky_slope)
        if level == 1:
            return torch.tanh(self.deconv1(h))
        raise ValueError(f"DEPICT has decoder layers 1, 2, 3; got {level}")

    def layer_parameters(self, level: int) -> list[nn.Parameter]:
        """Parameters of encoder layer ``level`` and of its decoder counterpart."""
        pairs = {1: (self.conv1, self.deconv1), 2: (self.conv2, self.deconv2),
                 3: (self.fc, self.defc)}
        return [p for module in pairs[level] for p in module.parameters()]

    def encoder_activations(self, x: torch.Tensor, corrupt: bool = False) -> list[torch.Tensor]:
        """The encoder's layers for x (B, C, H, W) in [0, 1].

        Returns [h0 (B, C, H, W) scaled input, h1 (B, maps, H1, W1), h2 (B, maps, H2, W2),
        z (B, K) embedding]; with ``corrupt`` each of h0, h1, h2 has been through dropout (the
        corrupted pathway; z is then the corrupted embedding), without it nothing is dropped.
        """
        h = F.dropout(self.scale_input(x), self.dropouts[0], training=corrupt)
        layers = [h]
        for level in (1, 2):
            h = F.dropout(self.encoder_layer(level, h), self.dropouts[level], training=corrupt)
            layers.append(h)
        layers.append(self.encoder_layer(3, h))
        return layers

    def decoder_activations(self, z: torch.Tensor) -> list[torch.Tensor]:
        """z (B, K) -> [h0_hat (B, C, H, W), h1_hat, h2_hat]: the reconstruction of each clean
        encoder layer, listed in the order of :meth:`encoder_activations`."""
        h2_hat = self.decoder_layer(3, z)
        h1_hat = self.decoder_layer(2, h2_hat)
        return [self.decoder_layer(1, h1_hat), h1_hat, h2_hat]

    @property
    def encoder(self) -> nn.ModuleList:
        """The encoding layers (conv1, conv2, fc), for heads that train the encoder only."""
        return nn.ModuleList([self.conv1, self.conv2, self.fc])

    @property
    def decoder(self) -> nn.ModuleList:
        """The decoding layers (defc, deconv2, deconv1)."""
        return nn.ModuleList([self.defc, self.deconv2, self.deconv1])

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Clean embedding: x (B, C, H, W) in [0, 1] -> z (B, K)."""
        return self.encoder_activations(x)[-1]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, K) -> reconstruction (B, C, H, W) in the network's input range."""
        return self.decoder_activations(z)[0]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Clean pathway: returns (z (B, K), x_hat (B, C, H, W) in the input range)."""
        z = self.encode(x)
        return z, self.decode(z)
