"""Built-in deep models (torch modules) for :class:`~byzmpi.tasks.torch_model.TorchModel`.

* ``lightnet``: the RoSDHB code's ``LightNet2`` for 28×28×1 images: conv(1→6, 3×3, padding 1) →
  ReLU → max-pool 2 → flatten → linear 1176 → C. d = 11,830 for C = 10.
* ``lenet5``: LeCun et al. (1998)'s LeNet-5 with ReLU and max-pooling (the common modern form):
  conv(1→6, 5×5, padding 2) → ReLU → max-pool 2 → conv(6→16, 5×5) → ReLU → max-pool 2 →
  linear 400→120 → ReLU → 120→84 → ReLU → 84→C. d = 61,706 for C = 10.
* ``resnet18``: ResNet-18 (He et al. 2016) with the CIFAR stem: a 3×3 stride-1 first convolution and
  no max-pool, for 32×32×3 inputs; d = 11,173,962 for C = 10. The layout, module names and
  initialisation (Kaiming-normal fan-out convolutions, unit/zero norm affines) are torchvision's
  ``resnet18`` (so its state dicts load, but for ``conv1``'s kernel), written out here because
  PyPI's torchvision wheel cannot load its operators beside the CPU torch this project pins.
  ``norm`` chooses the normalisation layer:

  - ``"group"`` (default): GroupNorm with ``groups`` groups (32, Wu & He 2018); no running
    statistics, so nothing but θ is model state.
  - ``"layer"``: layer normalisation over (C, H, W) of each sample with a per-channel affine, i.e.
    GroupNorm with one group.
  - ``"batch"``: BatchNorm2d; see :mod:`byzmpi.tasks.torch_model` for how its running statistics
    are handled (batch statistics in training, recomputed from honest data before evaluation).

All three are zero-argument factories after ``functools.partial`` (``model_factory`` builds one by
name), and deterministic given torch's global seed (TorchModel.init seeds it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from torch import Tensor, nn

NORMS = ("group", "layer", "batch")


class LightNet(nn.Module):
    """conv(1→6, 3×3, pad 1) → ReLU → max-pool 2 → linear (6·14·14 → C): the RoSDHB code's LightNet2."""

    def __init__(self, n_classes: int = 10, in_channels: int = 1, side: int = 28) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 6, kernel_size=3, padding=1)
        self.fc = nn.Linear(6 * (side // 2) ** 2, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.fc(nn.functional.max_pool2d(nn.functional.relu(self.conv(x)), 2).flatten(1))
        return out


class LeNet5(nn.Module):
    """LeNet-5 with ReLU and max-pooling for 28×28 inputs (the first convolution pads by 2)."""

    def __init__(self, n_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 6, kernel_size=5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        F = nn.functional
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2).flatten(1)
        out: Tensor = self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))
        return out


def norm_layer(norm: str, groups: int = 32) -> Callable[[int], nn.Module]:
    """A constructor ``channels -> normalisation module`` for ``norm`` ∈ NORMS."""
    if norm == "batch":
        return nn.BatchNorm2d
    if norm == "group":
        return lambda c: nn.GroupNorm(min(groups, c), c)
    if norm == "layer":
        return lambda c: nn.GroupNorm(1, c)
    raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock: two 3×3 convolutions with a (projected) identity shortcut."""

    expansion = 1

    def __init__(self, cin: int, cout: int, stride: int, norm: Callable[[int], nn.Module]) -> None:
        super().__init__()
        self.conv1 = _conv3x3(cin, cout, stride)
        self.bn1 = norm(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(cout, cout)
        self.bn2 = norm(cout)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False), norm(cout))

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        result: Tensor = self.relu(out + identity)
        return result


class ResNet18(nn.Module):
    """ResNet-18 with the CIFAR stem (3×3 stride-1 conv1, no max-pool), torchvision's names and init."""

    def __init__(self, n_classes: int = 10, in_channels: int = 3, norm: str = "group", groups: int = 32) -> None:
        super().__init__()
        make_norm = norm_layer(norm, groups)
        self.conv1 = _conv3x3(in_channels, 64)
        self.bn1 = make_norm(64)
        self.relu = nn.ReLU(inplace=True)
        widths, cin, layers = (64, 128, 256, 512), 64, []
        for i, width in enumerate(widths):
            stride = 1 if i == 0 else 2
            layers.append(
                nn.Sequential(BasicBlock(cin, width, stride, make_norm), BasicBlock(width, width, 1, make_norm))
            )
            cin = width
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, n_classes)
        for m in self.modules():  # torchvision's ResNet initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        out: Tensor = self.fc(self.avgpool(x).flatten(1))
        return out


#: name -> (module class, input shape (C, H, W) it is built for)
MODELS: dict[str, tuple[type[nn.Module], tuple[int, int, int]]] = {
    "lightnet": (LightNet, (1, 28, 28)),
    "lenet5": (LeNet5, (1, 28, 28)),
    "resnet18": (ResNet18, (3, 32, 32)),
}


def model_factory(name: str, *, n_classes: int = 10, norm: str = "group", groups: int = 32) -> Callable[[], nn.Module]:
    """A zero-argument factory for the built-in model ``name`` (``norm``/``groups``: resnet18 only)."""
    if name not in MODELS:
        raise ValueError(f"unknown built-in model {name!r}; known: {', '.join(MODELS)}")
    if name == "resnet18":
        norm_layer(norm, groups)  # validate now, not at first use
        return functools.partial(ResNet18, n_classes=n_classes, norm=norm, groups=groups)
    return functools.partial(MODELS[name][0], n_classes=n_classes)
