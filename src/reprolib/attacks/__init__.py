"""Batched, counted adversarial attacks, one per module, all importable from here.

Every attack is a function ``attack(model, x, y, *, targeted=False, **settings) -> AttackResult``:

* ``model`` is a :class:`reprolib.models.Classifier`, which owns the input bounds and any
  normalisation; ``x`` is a batch ``(N, *model.input_shape)`` inside the bounds; ``y`` holds the
  true labels ``(N,)`` (any integer dtype), or the target labels when ``targeted=True``.
* The result (:class:`AttackResult`) holds the adversarials clipped to the bounds and the raw
  ones, success re-checked by a fresh forward pass (of the raw ones too with
  ``check_raw=True``), the l0/l1/l2/l∞ norms of both, the forward
  and backward passes (or queries) spent per input, the attack's name and every setting it ran
  with. ``info`` holds what is specific to one attack (each docstring lists its keys).
* Bad settings raise :class:`AttackInputError` (a ``ValueError``) naming the setting and its
  valid range, before any model pass. The model runs in eval mode, with gradients enabled,
  whatever the caller's modes; an empty batch returns an empty result.

======================  =====================================================================
module                  attacks
======================  =====================================================================
``fast_gradient``       ``fgsm``, ``fgm`` (one step, ℓ∞ / ℓ2 / ℓ1)
``projected_gradient``  ``pgd``, ``ifgm``, ``bim`` (iterative, ℓ∞ / ℓ2 / ℓ1)
``targeted_iteration``  ``iterative_targeted``: document 003's equal-multiplier /
                        equal-perturbation rules
``deepfool_lp``         ``deepfool`` (any ℓp)
``convex``              document 001: ``alg1`` (and Alg1-n), ``alg2``, ``random_sign``
``gn_iteration``        ``min_norm_iteration``: document 001's eq. 8 iterated until the label
                        changes
``regression``          document 001 §III: ``l2_attack``, ``l1_attack`` for regressors
``lbfgs_bisection``     document 000: ``lbfgs`` with bisection on C
``cw``                  ``cw_l2`` (Carlini & Wagner)
``elastic_net``         ``ead`` (elastic net, ISTA / FISTA)
``zeroth_order``        ``zoo`` (black box, through :class:`~reprolib.attacks.ops.blackbox.BlackBox`)
``primal_dual``         document 004: ``pdgd``, ``pdpgd`` (ℓ∞ / ℓ2 / ℓ1 / ℓ0)
======================  =====================================================================

The shared machinery (norms, losses, proximal operators, Adam, the search on c, abort-early,
the best iterate, the tanh box, Jacobians, black-box access) is in :mod:`reprolib.attacks.ops`.

**One name per setting.** Every attack spells a setting the same way (Foolbox's and the C&W
code's names where they exist); the paper's symbol is given in each docstring.

=======================  ======================================================================
name                     meaning
=======================  ======================================================================
``targeted``             ``y`` holds targets and success means predicting them
``eps``                  the radius ε of the perturbation budget, in input units
``norm``                 ``"linf"``, ``"l2"``, ``"l1"`` (``"l0"``, ``"l0_group"`` where
                         supported), or a number p ≥ 1 for attacks defined for every ℓp
``steps``                iterations (per binary-search round for the attacks that search c)
``step_size``            the step size or learning rate α (η); ``rel_step_size`` as a multiple
                         of ε
``confidence``           the margin κ a success must hold
``initial_const``        the first trade-off constant c (per input when a tensor)
``binary_search_steps``  rounds of the per-input binary search on c
``abort_early``          end a round when the loss stops falling (C&W's rule)
``abort_early_every``    how many iterations between those checks
``stop_at_success``      freeze each input at its first successful iterate (fixed-budget attacks;
                         off by default: they then return the last iterate, as their papers)
``check_raw``            also re-check the unclipped output ``x_raw`` (every attack; off by
                         default, which spares a forward pass where it leaves the box)
``solver``               the optimiser or algorithm variant of an attack
``loss``                 the objective, by name (:data:`reprolib.attacks.ops.losses.LOSSES`)
``seed``                 the seed of the attack's own random generator (0 by default)
``record``               keep per-iteration trajectories in ``info``
=======================  ======================================================================
"""
from .core import ATTACKS, AttackResult, Counter, attack, finish, start
from .ops.checks import AttackInputError
from .convex import alg1, alg2, random_sign
from .cw import cw_l2
from .deepfool_lp import deepfool
from .elastic_net import ead
from .fast_gradient import fgm, fgsm
from .targeted_iteration import iterative_targeted
from .lbfgs_bisection import lbfgs
from .gn_iteration import min_norm_iteration
from .primal_dual import pdgd, pdpgd
from .projected_gradient import bim, ifgm, pgd
from .regression import l1_attack, l2_attack
from .zeroth_order import zoo

__all__ = ["ATTACKS", "AttackInputError", "AttackResult", "Counter", "attack", "finish", "start",
           "alg1", "alg2", "bim", "cw_l2", "deepfool", "ead", "fgm", "fgsm", "ifgm", "iterative_targeted",
           "l1_attack", "l2_attack", "lbfgs", "min_norm_iteration", "pdgd", "pdpgd", "pgd", "random_sign", "zoo"]
