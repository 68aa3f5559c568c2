"""Torch-free input checks for each network, so the config can be validated before any job runs."""

from __future__ import annotations

from collections.abc import Sequence

#: smallest image side the CAE accepts: three stride-2 convolutions (5, 5, 3) need >= 16 pixels
CAE_MIN_SIDE = 16


def check_any(input_shape: Sequence[int]) -> None:
    """Fully connected networks flatten any sample shape."""


def _check_image(input_shape: Sequence[int], min_side: int, what: str, why: str) -> None:
    """Raise ValueError unless ``input_shape`` is (C, H, W) with H, W >= ``min_side``."""
    if len(input_shape) != 3:
        raise ValueError(f"{what} needs images (C, H, W); this dataset has flat samples of "
                         f"shape {tuple(input_shape)}")
    _, h, w = input_shape
    if min(h, w) < min_side:
        raise ValueError(f"{what} needs images of at least {min_side}x{min_side}{why}; this "
                         f"dataset has {h}x{w}")


def check_conv_input(input_shape: Sequence[int]) -> None:
    """Raise ValueError when the DCEC CAE cannot be built for samples of ``input_shape``."""
    _check_image(input_shape, CAE_MIN_SIDE, "the convolutional autoencoder",
                 " (three stride-2 convolutions)")


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output side of a convolution (PyTorch's floor rule)."""
    return (size + 2 * padding - kernel) // stride + 1


def transposed_output_padding(target: int, source: int, kernel: int, padding: int,
                              stride: int = 2) -> int:
    """``output_padding`` that makes a transposed convolution map ``source`` back to ``target``.

    Raises ValueError when no output padding in ``[0, stride)`` does it.
    """
    extra = target - ((source - 1) * stride - 2 * padding + kernel)
    if not 0 <= extra < stride:
        raise ValueError(f"cannot mirror size {source} -> {target} with kernel {kernel}, "
                         f"padding {padding}, stride {stride}")
    return extra


#: DEPICT's conv layers (kernel, stride, padding) by image side, Table 5 of the paper (identical
#: to ``dataset_settings()`` in the authors' code): MNIST and USPS, FRGC and CMU-PIE, YTF.
DEPICT_LAYERS: dict[int, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    28: ((4, 2, 0), (5, 2, 2)),
    16: ((4, 2, 0), (5, 2, 2)),
    32: ((4, 2, 2), (5, 2, 2)),
    55: ((5, 2, 2), (4, 2, 0)),
}
#: [default] other sides use the padded FRGC/CMU-PIE layout (it keeps 8x8 images: 8 -> 5 -> 3)
DEPICT_DEFAULT_LAYERS = ((4, 2, 2), (5, 2, 2))
DEPICT_MIN_SIDE = 8


def depict_layers(side: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(kernel, stride, padding) of DEPICT's two conv layers for square-ish images of ``side``."""
    return DEPICT_LAYERS.get(side, DEPICT_DEFAULT_LAYERS)


def check_depict_input(input_shape: Sequence[int]) -> None:
    """Raise ValueError when DEPICT's convolutional autoencoder cannot take ``input_shape``."""
    _check_image(input_shape, DEPICT_MIN_SIDE, "DEPICT's convolutional autoencoder", "")


#: SAIP's HOE(CNN): two 2x2 max-poolings, so images need at least 4x4 pixels
SAIP_CNN_MIN_SIDE = 4


def check_saip_cnn_input(input_shape: Sequence[int]) -> None:
    """Raise ValueError when SAIP's HOE(CNN) autoencoder cannot take ``input_shape``."""
    _check_image(input_shape, SAIP_CNN_MIN_SIDE, "SAIP's convolutional autoencoder (HOE-CNN)",
                 " (two 2x2 max-poolings)")
#: smallest image side DSCDAN's dual autoencoder accepts (two stride-2 convolutions)
DSCDAN_MIN_SIDE = 8


def check_dscdan_input(input_shape: Sequence[int]) -> None:
    """Raise ValueError when DSCDAN's dual autoencoder cannot take ``input_shape``."""
    _check_image(input_shape, DSCDAN_MIN_SIDE, "DSCDAN's dual autoencoder",
                 " (two stride-2 convolutions)")
