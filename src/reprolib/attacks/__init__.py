"""Batched, counted adversarial attacks, one per module.

Every attack takes a :class:`reprolib.models.Classifier`, a batch inside its bounds and the
labels (or targets), and returns an :class:`AttackResult` whose success is re-checked by a
fresh forward pass. Defaults are the documents'. Import an attack from its module:

======================  =====================================================================
module                  attacks
======================  =====================================================================
``fgsm``                ``fgsm``, ``fgm`` (one step, ℓ∞ / ℓ2 / ℓ1)
``pgd``                 ``pgd``, ``ifgm``, ``bim`` (iterative, ℓ∞ / ℓ2 / ℓ1)
``iterative_targeted``  document 003's equal-multiplier / equal-perturbation rules
``deepfool``            ``deepfool`` (ℓ2, ℓ∞)
``convex``              document 001: ``alg1`` (and Alg1-n), ``alg2``, ``random_sign``, GNII
``regression``          document 001 §III: ``l2_attack``, ``l1_attack`` for regressors
``lbfgs``               document 000: ``lbfgs`` with bisection on C
``cw``                  ``cw_l2`` (Carlini & Wagner)
``ead``                 ``ead`` (elastic net, ISTA / FISTA)
``zoo``                 ``zoo`` (black box, through :class:`blackbox.BlackBox`)
``pdpgd``               document 004: ``pdgd``, ``pdpgd`` (ℓ∞ / ℓ2 / ℓ1 / ℓ0)
======================  =====================================================================

For example ``from reprolib.attacks.cw import cw_l2``.
"""
from .core import AttackInputError, AttackResult, Counter, finish, lp_norms, start

__all__ = ["AttackInputError", "AttackResult", "Counter", "finish", "lp_norms", "start"]
