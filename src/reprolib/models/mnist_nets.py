"""The MNIST architectures of the five documents. All take 1×28×28 inputs in [0, 1], except the
``*_released`` nets of document 001, which take MNIST zero-padded to 1×32×32 (``data.load("mnist32")``)."""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

#: MNIST training-set pixel mean and standard deviation.
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)


def mlp(sizes: list[int]) -> nn.Sequential:
    """Flatten, then Linear–ReLU layers of the given sizes; the last layer has no ReLU."""
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def logistic_regression() -> nn.Sequential:
    """Document 000, model M1: one affine layer 784 → 10."""
    return mlp([784, 10])


def fcnn() -> nn.Sequential:
    """Document 001's FCNN as the paper states it: 784 → 150 → 100 → 10, ReLU.
    (The authors' released checkpoint is 1024 → 500 → 150 → 10 on padded input.)"""
    return mlp([784, 150, 100, 10])


def _truncated_normal_(layers: list[nn.Module], stds: list[float]) -> None:
    """Initialise each layer's weight as TensorFlow's ``truncated_normal(stddev)`` (cut at ±2 std), bias 0."""
    for layer, std in zip(layers, stds):
        nn.init.trunc_normal_(layer.weight, std=std, a=-2 * std, b=2 * std)
        nn.init.zeros_(layer.bias)


def fcnn_released() -> nn.Sequential:
    """Document 001's FCNN as the authors released it: 1×32×32 (zero-padded MNIST) → 1024 → 500
    → 150 → 10, ReLU, weights initialised from truncated normals of std 0.07, 0.08, 0.11 (read
    from the released TensorFlow graph; biases 0, their initial value is not recorded). A border
    pixel of the padded input is 0 on every training image, so its first-layer weights keep their
    initial values unless the input is normalised or weight decay is on."""
    net = mlp([1024, 500, 150, 10])
    _truncated_normal_([m for m in net if isinstance(m, nn.Linear)], [0.07, 0.08, 0.11])
    return net


def lenet5_released() -> nn.Sequential:
    """Document 001's LeNet-5 as released, on 1×32×32 zero-padded input that the attacks see and
    perturb (unlike :class:`LeNet5`, which pads inside): conv5-6, pool, conv5-16, pool, FC 120,
    FC 84, FC 10, ReLU and max-pooling, weights from truncated normals of std 0.1, biases 0."""
    net = nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        *mlp([400, 120, 84, 10]),
    )
    _truncated_normal_([m for m in net if isinstance(m, (nn.Conv2d, nn.Linear))], [0.1] * 5)
    return net


def mlp_3x1000() -> nn.Sequential:
    """Document 004's MLP: three hidden layers of 1000 ReLU units."""
    return mlp([784, 1000, 1000, 1000, 10])


class LeNet5(nn.Module):
    """LeNet-5 as released with document 001: the 28×28 input is zero-padded to 32×32 inside
    the model; conv5-6, pool, conv5-16, pool, FC 120, FC 84, FC 10, ReLU and max-pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = mlp([400, 120, 84, 10])

    def forward(self, x):
        return self.classifier(self.features(F.pad(x, (2, 2, 2, 2))))


def cw_mnist() -> nn.Sequential:
    """The C&W MNIST CNN (Carlini & Wagner 2017, Table 1; documents 002 and 004):
    conv3-32, conv3-32, pool, conv3-64, conv3-64, pool, FC 200, dropout 0.5, FC 200, FC 10."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.Conv2d(64, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(1024, 200), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(200, 200), nn.ReLU(), nn.Linear(200, 10),
    )


def madry_mnist() -> nn.Sequential:
    """The MNIST challenge network of Madry et al. (document 002 §2.6; ``MadryLab/mnist_challenge``
    ``model.py``): conv5-32 'same', ReLU, pool 2, conv5-64 'same', ReLU, pool 2, FC 1024, ReLU,
    FC 10. (The challenge feeds raw [0, 1] pixels; the zoo's MNIST wrapper standardises them first,
    an affine input change that leaves the attack geometry in pixel space as it is.)"""
    return nn.Sequential(
        nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(7 * 7 * 64, 1024), nn.ReLU(), nn.Linear(1024, 10),
    )


def tabacof_convnet() -> nn.Sequential:
    """Document 000's MNIST ConvNet (model M2), the authors' Torch network adapted to 28×28 input
    (reproduction notes of document 000, §4.1): conv5-32, ReLU, max-pool 3/3 (24 → 8), conv5-64,
    ReLU, max-pool 2 (4 → 2), FC 256 → 200, ReLU, FC 10."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 5), nn.ReLU(), nn.MaxPool2d(3, 3),
        nn.Conv2d(32, 64, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(256, 200), nn.ReLU(), nn.Linear(200, 10),
    )
