"""Batched, counted adversarial attacks, one per module.

Every attack takes a :class:`reprolib.models.Classifier`, a batch inside its bounds and the
labels (or targets), and returns an :class:`AttackResult` whose success is re-checked by a
fresh forward pass. Defaults are the documents' (see each module's docstring).
"""
from .blackbox import BlackBox
from .convex import alg1, alg2, gnii_step, gnii_value, min_norm_step, random_sign
from .core import AttackInputError, AttackResult, Counter, finish, lp_norms, start
from .cw import cw_l2
from .deepfool import deepfool
from .ead import ead
from .fgsm import fgm, fgsm
from .iterative_targeted import iterative_targeted
from .lbfgs import lbfgs
from .pdpgd import pdgd, pdpgd
from .pgd import bim, ifgm, pgd
from .zoo import zoo

__all__ = [
    "AttackInputError", "AttackResult", "BlackBox", "Counter", "alg1", "alg2", "bim", "cw_l2",
    "deepfool", "ead", "fgm", "fgsm", "finish", "gnii_step", "gnii_value", "ifgm",
    "iterative_targeted", "lbfgs", "lp_norms", "min_norm_step", "pdgd", "pdpgd", "pgd",
    "random_sign", "start", "zoo",
]
