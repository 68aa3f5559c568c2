"""Stages of the deep-clustering workflow, one module per stage: ``python -m stages.<stage>``."""

__version__ = "0.1.0"
