"""The training runtime: what every method's training runs on, whatever its family.

* :mod:`stages.runtime.train` -- the one training loop (on-device batches, keyed checkpoints,
  stage clock, NaN guard, history, validation hooks, optimisers);
* :mod:`stages.runtime.snapshots` -- embedding snapshots taken during training (snapshots.h5);
* :mod:`stages.runtime.precision` -- fp32, bf16-mixed or auto (bf16 where native) networks;
* :mod:`stages.runtime.device` -- device choice, thread count and seeding;
* :mod:`stages.runtime.models` -- saving and loading trained networks (model.pt);
* :mod:`stages.runtime.torchfiles` -- loading torch files with the weights-only unpickler.

A new training feature that every family can use (a hook of the loop, a precision, a device)
goes here; a method's own objective goes in its family under :mod:`stages.methods`, a network
under :mod:`stages.nets`. Nothing here imports a stage's entry point (``stages/<stage>.py``).
"""
