"""Defences against adversarial examples, one module per defence, trained with
:func:`reprolib.train.fit`.

==========================  ==========================================================================
module                      what it holds
==========================  ==========================================================================
``distillation``            defensive distillation (Papernot et al. 2016): teacher and student at
                            temperature T, deployed at T = 1
``adversarial_training``    PGD-AT (Madry et al.), FGSM-AT (document 004, eq. 2.22), FGSM with random
                            start (Wong et al.), and training on a fixed set of attack examples
                            (document 002, Table 7)
``vat``                     virtual adversarial training (Miyato et al.) with its power iteration
``feature_squeezing``       squeezers (bit depth, median, OpenCV non-local means), the joint detector
                            (Xu et al.), and the squeezed model as a target for attacks
``detectors``               binary genuine-vs-adversarial detectors (document 003), split by source
==========================  ==========================================================================

The on-the-fly defences are ``batch_loss`` callables for :func:`reprolib.train.fit`::

    from reprolib.defenses import pgd_at
    from reprolib.train import Recipe, fit

    fit(model, Recipe(epochs=10, lr=1e-3, optimizer="adam"), train, batch_loss=pgd_at(0.3, steps=10))
"""
from .adversarial_training import (AdversarialLoss, adversarial_examples, fgsm_at, fgsm_rs_at, pgd_at,
                                   with_adversarials)
from .detectors import (ADVERSARIAL, GENUINE, DetectionSplit, detection_accuracy, detection_split,
                        small_detector, train_detector)
from .distillation import Distilled, at_temperature, defensive_distillation, soft_cross_entropy, soft_labels
from .feature_squeezing import (BitDepth, JointDetector, MedianSmoothing, NonLocalMeans, SqueezedClassifier,
                                Squeezer, cifar_squeezers, median_filter, mnist_squeezers, non_local_means,
                                reduce_bit_depth)
from .vat import VATLoss, kl_divergence, power_iteration, virtual_adversarial_perturbation

__all__ = [
    "ADVERSARIAL", "AdversarialLoss", "BitDepth", "DetectionSplit", "Distilled", "GENUINE", "JointDetector",
    "MedianSmoothing", "NonLocalMeans", "SqueezedClassifier", "Squeezer", "VATLoss", "adversarial_examples",
    "at_temperature", "cifar_squeezers", "defensive_distillation", "detection_accuracy", "detection_split",
    "fgsm_at", "fgsm_rs_at", "kl_divergence", "median_filter", "mnist_squeezers", "non_local_means", "pgd_at",
    "power_iteration", "reduce_bit_depth", "small_detector", "soft_cross_entropy", "soft_labels",
    "train_detector", "virtual_adversarial_perturbation", "with_adversarials",
]
