"""RMN-GMM's stage-1 autoencoder (Wang & Jiang, Neurocomputing 2021, Sect. 4.3).

:class:`RBMAutoencoder` is the DEC family's :class:`~stages.nets.dec.StackedAutoencoder`
(d-500-500-2000-10, mirrored decoder; "each of which has four fully connected layers" [paper])
with the activations of an unrolled stack of RBMs [default, Hinton & Salakhutdinov 2006; the
paper does not state them]: logistic hidden layers, a linear 10-d code (the top RBM has Gaussian
hidden units), logistic decoder layers and a logistic output for inputs in [0, 1] (``output:
linear`` for features such as tf-idf). Layer ``l`` (1-based, from the input) pairs encoder layer
``l`` with the decoder layer that mirrors it; an RBM (or a denoising layer of the greedy SdA
substitute) trained on level ``l`` is unrolled into exactly that pair.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from stages.nets.dec import StackedAutoencoder, keras_init_

#: activation name -> module factory
ACTIVATIONS = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU, "linear": nn.Identity}


def _layers(dims: Sequence[int], activations: Sequence[str]) -> nn.Sequential:
    """Linear ``dims[i] -> dims[i+1]`` each followed by ``activations[i]``.

    The layout (Linear at even indices, the activation after it) keeps the state-dict keys of
    :class:`StackedAutoencoder` for the linear layers.
    """
    layers: list[nn.Module] = []
    for d_in, d_out, act in zip(dims[:-1], dims[1:], activations, strict=True):
        layers += [nn.Linear(d_in, d_out), ACTIVATIONS[act]()]
    return nn.Sequential(*layers)


class RBMAutoencoder(StackedAutoencoder):
    """Fully connected autoencoder whose layer pairs can be pretrained as RBMs.

    Args:
        input_shape: shape of one sample (flattened).
        hidden: hidden widths, the last one the code (default 500-500-2000-10 [paper]).
        activation: hidden-layer activation, ``sigmoid`` [default] or ``relu`` (for the greedy
            denoising substitute, DEC's convention).
        output: activation of the reconstruction, ``sigmoid`` (inputs in [0, 1]) or ``linear``.
    """

    def __init__(self, input_shape: Sequence[int], hidden: Sequence[int] = (500, 500, 2000, 10),
                 activation: str = "sigmoid", output: str = "sigmoid"):
        for name, value in (("activation", activation), ("output", output)):
            if value not in ACTIVATIONS:
                raise ValueError(f"unknown {name} '{value}'; valid choices: "
                                 f"{', '.join(sorted(ACTIVATIONS))}")
        super().__init__(input_shape, hidden)
        self.activation, self.output = activation, output
        dims = [int(torch.Size(self.input_shape).numel()), *(int(h) for h in hidden)]
        self.dims = tuple(dims)
        n = len(hidden)
        self.encoder = _layers(dims, [activation] * (n - 1) + ["linear"])
        self.decoder = _layers(dims[::-1], [activation] * (n - 1) + [output])
        keras_init_(self)

    @property
    def n_levels(self) -> int:
        """Number of layer pairs (RBMs) = number of encoder layers."""
        return len(self.dims) - 1

    def encoder_linear(self, level: int) -> nn.Linear:
        """Encoder layer ``level`` (1-based): (dims[level-1] -> dims[level])."""
        return self.encoder[2 * (level - 1)]

    def decoder_linear(self, level: int) -> nn.Linear:
        """The decoder layer mirroring encoder layer ``level``: (dims[level] -> dims[level-1])."""
        return self.decoder[2 * (self.n_levels - level)]

    def hidden_kind(self, level: int) -> str:
        """Activation of encoder layer ``level``'s output (the RBM's hidden units)."""
        return "linear" if level == self.n_levels else self.activation

    def visible_kind(self, level: int) -> str:
        """Activation of the decoder layer mirroring ``level`` (the RBM's visible units)."""
        return self.output if level == 1 else self.activation

    def encode_below(self, x: torch.Tensor, level: int) -> torch.Tensor:
        """x: (B, *input_shape) -> the input of encoder layer ``level``, (B, dims[level-1])."""
        h = x.flatten(1)
        return self.encoder[: 2 * (level - 1)](h) if level > 1 else h

    def layer_parameters(self, level: int) -> list[nn.Parameter]:
        """Weights and biases of the layer pair ``level``."""
        return [*self.encoder_linear(level).parameters(), *self.decoder_linear(level).parameters()]
