"""Architectures of the five documents, the :class:`Classifier` wrapper, and the trained zoo."""
from .classifier import Classifier, eval_mode
from .registry import SPECS, CheckpointError, ModelSpec, load, metadata, names, train

__all__ = ["Classifier", "CheckpointError", "ModelSpec", "SPECS", "eval_mode", "load", "metadata", "names", "train"]
