"""Device choice, thread count and seeding, shared by every stage that runs torch."""

from __future__ import annotations

import logging
import os
import random

import numpy as np
import torch

from stages.plumbing.errors import ConfigError

log = logging.getLogger("stages.runtime.device")


def resolve_device(requested: str = "auto") -> torch.device:
    """Pick the device for a stage.

    ``auto`` takes the GPU when one is usable and otherwise the CPU, saying so in the log when
    a GPU was promised (``CUDA_VISIBLE_DEVICES`` set, as on a SLURM GPU node) but none works.
    ``cuda`` and ``cuda:N`` fail with :class:`ConfigError` when no GPU is usable, and ``cuda:N``
    when torch sees no GPU number N; ``cpu`` is always honoured.
    """
    index = requested.removeprefix("cuda:") if requested.startswith("cuda:") else None
    if requested not in ("auto", "cpu", "cuda") and not (index and index.isdigit()):
        raise ConfigError(f"unknown device '{requested}'; valid choices: auto, cpu, cuda, cuda:N")
    usable = torch.cuda.is_available()
    if requested == "cpu":
        return torch.device("cpu")
    if requested == "auto":
        if usable:
            return torch.device("cuda")
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible not in (None, "", "-1"):
            log.warning("CUDA_VISIBLE_DEVICES=%s but torch sees no usable GPU: running on the CPU",
                        visible)
        return torch.device("cpu")
    if not usable:
        raise ConfigError(f"device '{requested}' was set in the config but torch sees no usable "
                          "GPU; set device: auto (falls back to the CPU) or device: cpu")
    if index is not None and int(index) >= (count := torch.cuda.device_count()):
        raise ConfigError(f"device '{requested}' was set in the config but torch sees {count} "
                          f"GPU(s), cuda:0 to cuda:{count - 1} (CUDA_VISIBLE_DEVICES="
                          f"{os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); set device: cuda "
                          "(the first visible GPU) or a number below the count")
    return torch.device(requested)


def configure_torch(threads: int | None, device: torch.device) -> None:
    """Flush denormal floats to zero on the CPU and set the CPU thread count (from the rule's
    ``threads``). TF32 on CUDA is a matter of the recipe's precision
    (:func:`stages.runtime.precision.use_precision`), off under ``32``.

    Denormals (magnitudes below 1.2e-38 in fp32) arise in training as Adam's first moments of
    weights whose gradient is zero decay by 0.9 per step (the first layer's weights of the
    always-black border pixels of MNIST reach them after about 800 steps); x86 CPUs handle
    them in microcode, many times slower. Flushing them to zero (before the thread pool
    starts, so that its threads inherit the setting) changes values that are far below one
    unit in the last place of every weight they update.
    """
    del device  # kept in the signature: every stage calls it with its device
    torch.set_flush_denormal(True)  # a no-op returning False where the CPU lacks SSE3
    if threads:
        torch.set_num_threads(int(threads))


def seed_everything(seed: int) -> None:
    """Fix Python's, NumPy's and torch's (CPU and CUDA) random streams."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def describe(device: torch.device) -> str:
    """Human-readable device name recorded in every artifact (e.g. 'cpu (2 threads)')."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"
