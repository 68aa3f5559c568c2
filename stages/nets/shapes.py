"""Torch-free input checks for each network, so the config can be validated before any job runs."""

from __future__ import annotations

from collections.abc import Sequence

#: smallest image side the CAE accepts: three stride-2 convolutions (5, 5, 3) need >= 16 pixels
CAE_MIN_SIDE = 16


def check_any(input_shape: Sequence[int]) -> None:
    """Fully connected networks flatten any sample shape."""


def check_conv_input(input_shape: Sequence[int]) -> None:
    """Raise ValueError when the DCEC CAE cannot be built for samples of ``input_shape``."""
    if len(input_shape) != 3:
        raise ValueError(f"the convolutional autoencoder needs images (C, H, W); this dataset has "
                         f"flat samples of shape {tuple(input_shape)}")
    _, h, w = input_shape
    if min(h, w) < CAE_MIN_SIDE:
        raise ValueError(f"the convolutional autoencoder needs images of at least "
                         f"{CAE_MIN_SIDE}x{CAE_MIN_SIDE} (three stride-2 convolutions); this "
                         f"dataset has {h}x{w}")
