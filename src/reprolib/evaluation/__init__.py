"""Evaluation: running and measuring attacks, apart from the attacks themselves.

================  ===================================================================================
module            what it holds
================  ===================================================================================
``run``           an attack over a data set in batches: cached per batch, resumable
``metrics``       robustness metrics: fooling ratio, document 001's ρ̂₁, ρ̂₂ and ε₉₉, robust accuracy,
                  document 002's best, average and worst case
``eps_grid``      the smallest successful ε of FGM and I-FGM on a grid (document 002, Table 4)
``exact``         exact minimal ℓ∞ and ℓ1 perturbations of small ReLU MLPs by mixed-integer
                  programming (the optimum the minimum-norm attacks are measured against)
``peers``         reprolib's attacks against Foolbox's, ART's and torchattacks' implementations of
                  the same algorithms (``benchmarks/peers.py``, ``make bench``)
``substitute``    Papernot et al.'s substitute model, trained by Jacobian-based augmentation against a
                  counted black box (document 002, Table 1)
``scaling``       how an attack's time and memory grow with batch size and image count, and where
                  its time goes (``benchmarks/scaling.py``)
``pixel_space``   noise probes around adversarial images, distortion statistics (document 000)
``trajectories``  per-iteration statistics of document 003's targeted iteration: regions D1–D3,
                  mean bands, iterations needed, the α/β calibration rule, the float underflow
                  margins of the CE gradient, per-iteration time at batch size 1
``toy2d``         document 003's 2-D toy (on scikit-learn's ``make_circles``): the 2-50-2
                  network, exact input-gradient maps of the CE, logit and CE-sign sources
================  ===================================================================================

Evaluation code uses the library (:mod:`reprolib.attacks`, :mod:`reprolib.models`,
:mod:`reprolib.cache`); the attacks never import it. Import the modules themselves
(``from reprolib.evaluation import metrics``): this package imports none of them, so loading it
costs nothing.
"""
