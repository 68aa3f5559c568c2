"""DSCDAN's dual autoencoder (Yang et al., CVPR 2019, Sect. 3.1, Fig. 3 and Table 2).

One network holds everything the pretraining objective (Eq. 13) and the clustering phase (Eq. 20)
train, so that the pretrain stage saves it in one file and the finetune stage gets it back:

* encoder E: the per-dataset conv stack of Table 2 ([recon] in the spec: MNIST / Fashion
  3x3x16 s2, 3x3x16 s1, 3x3x32 s2, 3x3x32 s1; USPS-sized 16x16 images 3x3x16 s2, 3x3x32 s2;
  YTF-sized 55x55 images the 4-layer stack with 5x5 kernels), its channels times
  ``channel_multiplier`` ([code] 2: the code doubles ``filters = 16`` before its first conv, so
  32/32/64/64 on MNIST; [paper] 1, Table 2 as we read it), 'same' padding, LeakyReLU(0.2)
  [code], then Flatten and two linear heads ``mu`` and ``logvar`` of size 120 [paper] / two heads
  [code]; the clean code is z = mu(x);
* noisy transformer psi: z_hat = mu + exp(logvar / 2) * eps, eps ~ N(0, I) ([code], the
  default), or the paper's multiplicative Gaussian noise z_hat = mu * eps, eps ~ N(1, s^2)
  (``noise: multiplicative``, s = ``noise_std``, [default] 0.2);
* decoder D, shared by z and z_hat: Linear(120 -> last feature map) without activation
  ([code]; ``decoder_dense: leaky`` adds a LeakyReLU), transposed convs undoing the encoder's
  layers in reverse (strides reversed) and a final stride-1 transposed conv to the input channels.
  ``decoder_channels: code`` [code]: the conv undoing encoder layer i outputs that layer's
  channels (MNIST x2: 64 s1, 64 s2, 32 s1, 32 s2, then 1); ``mirror``: it outputs the channels
  of layer i's input (at least the first layer's: 32 s1, 16 s2, 16 s1, 16 s2 at x1). Output
  ``sigmoid`` [code] or ``linear`` (``output``);
* global MI discriminator T1 on [phi(x); z] (phi: the flattened last encoder map),
  FC(120)-ReLU x3 - FC(1) [default, the code's width];
* local MI discriminator T2 on the middle encoder map C (output of enc-2; of enc-1 for the
  2-layer stack) with z tiled over its grid: 1x1 conv(120)-ReLU x2 - 1x1 conv(1) [default];
* with ``prior_clusters`` K > 0, the mixture prior of the code's pretraining (``vaeConv2d.py``):
  a classifier q(y | mu) FC(``prior_width`` 256)-ReLU-FC(K) (soft-max in the loss) and the K
  means m_k of N(m_k, I), starting at zero [code]. The pretrain stage sets K to the dataset's
  number of clusters.

Glorot-uniform weights, zero biases (Keras defaults, as in the authors' code). The measurements
behind the output and width choices: docs/notes/dscdan.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from stages.nets.dec import keras_init_
from stages.nets.layout import channels_last
from stages.nets.shapes import check_dscdan_input, conv_output_size, transposed_output_padding

#: [recon] Table 2 as (kernel, channels, stride) per encoder layer, by image side; the strides
#: are the code's (2, 1, 2, 1) for the 4-layer stacks and [default] (2, 2) for USPS
DSCDAN_LAYERS: dict[int, tuple[tuple[int, int, int], ...]] = {
    28: ((3, 16, 2), (3, 16, 1), (3, 32, 2), (3, 32, 1)),
    16: ((3, 16, 2), (3, 32, 2)),
    55: ((5, 16, 2), (5, 16, 1), (5, 32, 2), (5, 32, 1)),
}
NOISE_KINDS = ("gaussian", "multiplicative")
OUTPUTS = ("linear", "sigmoid")
DECODER_CHANNELS = ("code", "mirror")
DECODER_DENSE = ("linear", "leaky")


def dscdan_layers(side: int) -> tuple[tuple[int, int, int], ...]:
    """Table 2's encoder layers for images of ``side``; [default] other sides >= 24 take the MNIST
    stack, smaller ones the USPS stack."""
    if side in DSCDAN_LAYERS:
        return DSCDAN_LAYERS[side]
    return DSCDAN_LAYERS[28] if side >= 24 else DSCDAN_LAYERS[16]


class DualAutoencoder(nn.Module):
    """DSCDAN's dual autoencoder with its two MI discriminators.

    Args:
        input_shape: (C, H, W), values in [0, 1].
        latent_dim: size of mu, logvar and the code (120 [paper]).
        layers: encoder layers as (kernel, channels, stride); default :func:`dscdan_layers`.
        middle: 1-based index of the encoder layer whose output feeds the local discriminator
            (default 2, or 1 for a 2-layer stack).
        noise: ``gaussian`` (reparameterised, [code]) or ``multiplicative`` (the paper's words).
        noise_std: s of the multiplicative noise N(1, s^2).
        disc_width: hidden width of the global discriminator (120 [code]).
        local_width: hidden width of the local one (default ``disc_width``); it runs at every
            position of the middle map, so it dominates the cost on a CPU.
        leaky_slope: LeakyReLU slope of encoder and decoder.
        output: ``sigmoid`` ([code]) or ``linear`` decoder output.
        channel_multiplier: factor on the encoder channels of ``layers`` (2 [code], 1 [paper]).
        decoder_channels: ``code`` or ``mirror`` (see the module docstring).
        decoder_dense: ``linear`` ([code]) or ``leaky``: the decoder's first layer.
        prior_clusters: K of the mixture prior's classifier and means (0: none).
        prior_width: hidden width of that classifier (256 [code]).
    """

    def __init__(self, input_shape: Sequence[int], latent_dim: int = 120,
                 layers: Sequence[Sequence[int]] | None = None, middle: int | None = None,
                 noise: str = "gaussian", noise_std: float = 0.2, disc_width: int = 120,
                 local_width: int | None = None, leaky_slope: float = 0.2,
                 output: str = "sigmoid", channel_multiplier: int = 2,
                 decoder_channels: str = "code", decoder_dense: str = "linear",
                 prior_clusters: int = 0, prior_width: int = 256):
        super().__init__()
        check_dscdan_input(input_shape)
        c_in, h, w = (int(s) for s in input_shape)
        self.input_shape = (c_in, h, w)
        if noise not in NOISE_KINDS:
            raise ValueError(f"unknown noise '{noise}'; valid choices: {', '.join(NOISE_KINDS)}")
        self.noise, self.noise_std = noise, float(noise_std)
        if output not in OUTPUTS:
            raise ValueError(f"unknown output '{output}'; valid choices: {', '.join(OUTPUTS)}")
        self.output = output
        for name, value, valid in (("decoder_channels", decoder_channels, DECODER_CHANNELS),
                                   ("decoder_dense", decoder_dense, DECODER_DENSE)):
            if value not in valid:
                raise ValueError(f"unknown {name} '{value}'; valid choices: {', '.join(valid)}")
        if int(channel_multiplier) < 1:
            raise ValueError(f"channel_multiplier must be a positive integer, got "
                             f"{channel_multiplier}")
        self.decoder_dense = decoder_dense
        self.embedding_dim = self.latent_dim = int(latent_dim)
        self.leaky_slope = float(leaky_slope)
        spec = [(int(k), int(c) * int(channel_multiplier), int(s))
                for k, c, s in (layers or dscdan_layers(min(h, w)))]
        self.middle = int(middle) if middle is not None else (2 if len(spec) >= 3 else 1)
        if not 1 <= self.middle <= len(spec):
            raise ValueError(f"middle layer {self.middle} outside the {len(spec)} encoder layers")
        sizes = [(h, w)]
        for kernel, _, stride in spec:
            sh, sw = sizes[-1]
            sizes.append((conv_output_size(sh, kernel, stride, kernel // 2),
                          conv_output_size(sw, kernel, stride, kernel // 2)))
        channels = [c_in] + [c for _, c, _ in spec]
        self.encoder = nn.ModuleList(
            nn.Conv2d(channels[i], channels[i + 1], k, stride=s, padding=k // 2)
            for i, (k, _, s) in enumerate(spec))
        self._map_shape = (channels[-1], *sizes[-1])
        flat = channels[-1] * sizes[-1][0] * sizes[-1][1]
        self.mu = nn.Linear(flat, self.latent_dim)
        self.logvar = nn.Linear(flat, self.latent_dim)
        self.defc = nn.Linear(self.latent_dim, flat)
        deconvs = []
        for i in reversed(range(len(spec))):  # undo encoder layer i: channels[i+1] -> channels[i]
            k, _, s = spec[i]
            pad = (transposed_output_padding(sizes[i][0], sizes[i + 1][0], k, k // 2, s),
                   transposed_output_padding(sizes[i][1], sizes[i + 1][1], k, k // 2, s))
            if decoder_channels == "code":
                c_from = channels[i + 2] if i + 2 < len(channels) else channels[-1]
                c_to = channels[i + 1]
            else:
                c_from, c_to = channels[i + 1], max(channels[i], channels[1])
            deconvs.append(nn.ConvTranspose2d(c_from, c_to, k, stride=s, padding=k // 2,
                                              output_padding=pad))
        self.decoder = nn.ModuleList(deconvs)
        k_out = spec[0][0]
        self.out = nn.ConvTranspose2d(deconvs[-1].out_channels, c_in, k_out, stride=1,
                                      padding=k_out // 2)
        self.global_disc = nn.Sequential(
            nn.Linear(flat + self.latent_dim, disc_width), nn.ReLU(),
            nn.Linear(disc_width, disc_width), nn.ReLU(),
            nn.Linear(disc_width, disc_width), nn.ReLU(),
            nn.Linear(disc_width, 1))
        c_mid = channels[self.middle]
        lw = int(local_width) if local_width is not None else int(disc_width)
        self.local_disc = nn.Sequential(
            nn.Conv2d(c_mid + self.latent_dim, lw, 1), nn.ReLU(),
            nn.Conv2d(lw, lw, 1), nn.ReLU(),
            nn.Conv2d(lw, 1, 1))
        self.prior_clusters = int(prior_clusters)
        if self.prior_clusters > 0:
            self.prior_classifier = nn.Sequential(
                nn.Linear(self.latent_dim, int(prior_width)), nn.ReLU(),
                nn.Linear(int(prior_width), self.prior_clusters))
            self.prior_means = nn.Parameter(torch.zeros(self.prior_clusters, self.latent_dim))
        keras_init_(self)

    # ------------------------------------------------------------------------- encoder / decoder
    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                 torch.Tensor]:
        """x (B, C, H, W) -> (middle map (B, c_mid, h_mid, w_mid), phi (B, F) the flattened last
        map, mu (B, d), logvar (B, d))."""
        h = channels_last(x)   # faster convs on CPU (measured)
        middle = h
        for level, conv in enumerate(self.encoder, start=1):
            h = F.leaky_relu(conv(h), self.leaky_slope, inplace=True)
            if level == self.middle:
                middle = h
        phi = h.flatten(1)
        return middle, phi, self.mu(phi), self.logvar(phi)

    def sample(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """The noisy transformer psi: (mu, logvar) (B, d) -> z_hat (B, d)."""
        eps = torch.randn_like(mu)
        if self.noise == "gaussian":
            return mu + torch.exp(0.5 * logvar) * eps
        return mu * (1.0 + self.noise_std * eps)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Clean code z = mu(x): (B, C, H, W) -> (B, d)."""
        return self.features(x)[2]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, d) -> reconstruction (B, C, H, W)."""
        h = self.defc(z)
        if self.decoder_dense == "leaky":
            h = F.leaky_relu(h, self.leaky_slope, inplace=True)
        h = h.view(z.shape[0], *self._map_shape)
        h = channels_last(h)
        for deconv in self.decoder:
            h = F.leaky_relu(deconv(h), self.leaky_slope, inplace=True)
        out = self.out(h)
        return torch.sigmoid(out) if self.output == "sigmoid" else out

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Clean pathway: (z (B, d), x_hat (B, C, H, W))."""
        z = self.encode(x)
        return z, self.decode(z)

    def prior_probabilities(self, mu: torch.Tensor) -> torch.Tensor:
        """The mixture prior's q(y | mu) = softmax(classifier(mu)): (B, d) -> (B, K)."""
        if self.prior_clusters == 0:
            raise ValueError("this dual autoencoder has no mixture prior (prior_clusters 0)")
        return F.softmax(self.prior_classifier(mu), dim=1)

    # ---------------------------------------------------------------------------- discriminators
    def global_logits(self, phi: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """T1: phi (B, F), z (B, d) -> logits (B,)."""
        return self.global_disc(torch.cat([phi, z], dim=1)).squeeze(1)

    def local_logits(self, middle: torch.Tensor, *codes: torch.Tensor,
                     ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """T2: middle map (B, c, h, w) and each z (B, d) tiled over the grid -> logits (B, h, w)
        per code (a tuple when more than one code is given).

        The same function as ``local_disc`` on ``cat([middle, tiled z])``, computed without the
        tiling: the first 1x1 conv splits into its map part, computed once for all codes, plus
        its code part, computed once per sample and broadcast over the grid; the convs run as
        matmuls over the grid positions (channels last)."""
        first, second, third = self.local_disc[0], self.local_disc[2], self.local_disc[4]
        c = middle.shape[1]
        w1 = first.weight.flatten(1)                                   # (lw, c + d)
        base = F.linear(middle.permute(0, 2, 3, 1), w1[:, :c], first.bias)   # (B, h, w, lw)
        out = []
        for z in codes:
            h = F.relu(base + F.linear(z, w1[:, c:])[:, None, None, :])
            h = F.relu(F.linear(h, second.weight.flatten(1), second.bias))
            out.append(F.linear(h, third.weight.flatten(1), third.bias).squeeze(-1))
        return out[0] if len(out) == 1 else tuple(out)
