"""The machinery the attacks share, one module per job; no attack imports another attack.

==============  ================================================================================
module          what it holds
==============  ================================================================================
``checks``      :class:`AttackInputError` and the argument checks (counts, ranges, choices)
``norms``       norm names and orders, ℓp and dual norms, unit directions, ε-ball projections
``losses``      per-input objectives from logits (CE, logit, C&W margin) and the margin itself
``prox``        proximal operators of the ℓp norms and EAD's shrinkage-thresholding
``box``         the tanh change of variables and the mask of coordinates pinned at a bound
``optim``       Adam in its standard and TensorFlow forms
``search``      binary search on c, abort-early, the best iterate per input
``linearized``  document 001's closed-form steps on a linearised margin (GNII, eq. 8)
``jacobian``    counted Jacobians and margin gradients
``blackbox``    score-only query access for black-box attacks
==============  ================================================================================
"""
