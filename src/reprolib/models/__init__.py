"""Architectures of the five documents, the :class:`Classifier` wrapper, and the trained zoo."""
from .classifier import Classifier
from .registry import SPECS, CheckpointError, ModelSpec, load, metadata, names, train

__all__ = ["Classifier", "CheckpointError", "ModelSpec", "SPECS", "load", "metadata", "names", "train"]
