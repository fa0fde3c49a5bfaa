"""Built-in deep models: sizes, architecture, norms, and the adapter's gradient on ResNet-18."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from byzmpi.tasks.deep_models import MODELS, LeNet5, LightNet, ResNet18, model_factory
from byzmpi.tasks.torch_model import TorchModel


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_lightnet_is_the_rosdhb_lightnet2():
    m = LightNet()
    # conv 1->6 3x3 (54 + 6), linear 6*14*14 = 1176 -> 10 (11760 + 10)
    assert n_params(m) == 11_830
    assert m.conv.kernel_size == (3, 3) and m.conv.padding == (1, 1) and m.fc.in_features == 1176
    assert m(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_lenet5_size():
    # 156 + 2416 + 400*120+120 + 120*84+84 + 84*10+10
    assert n_params(LeNet5()) == 156 + 2416 + 48_120 + 10_164 + 850 == 61_706
    assert LeNet5()(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize("norm", ["group", "layer", "batch"])
def test_resnet18_cifar_stem_and_norms(norm):
    m = ResNet18(norm=norm)
    assert n_params(m) == 11_173_962  # torchvision resnet18(num_classes=10) with a 3x3 conv1
    assert m.conv1.kernel_size == (3, 3) and m.conv1.stride == (1, 1)
    assert not any(isinstance(x, nn.MaxPool2d) for x in m.modules())
    kinds = {type(x) for x in m.modules()}
    if norm == "batch":
        assert nn.BatchNorm2d in kinds and nn.GroupNorm not in kinds
    else:
        assert nn.BatchNorm2d not in kinds
        groups = {x.num_groups for x in m.modules() if isinstance(x, nn.GroupNorm)}
        assert groups == ({1} if norm == "layer" else {32})
    names = dict(m.named_parameters())
    for key in (
        "conv1.weight",
        "bn1.weight",
        "layer1.0.conv1.weight",
        "layer2.0.downsample.0.weight",
        "layer4.1.bn2.bias",
        "fc.weight",
    ):
        assert key in names  # torchvision's parameter names
    assert names["layer4.1.conv2.weight"].shape == (512, 512, 3, 3)


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="norm must be one of"):
        model_factory("resnet18", norm="instance")
    with pytest.raises(ValueError, match="unknown built-in model"):
        model_factory("vgg")
    assert set(MODELS) == {"lightnet", "lenet5", "resnet18"}


def test_resnet18_flat_gradient_matches_autograd():
    factory = model_factory("resnet18", norm="group")
    model = TorchModel(factory, input_shape=(3, 32, 32))
    theta = model.init(torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    X = torch.randn(2, 3 * 32 * 32, generator=g)
    y = torch.tensor([3, 7])
    value, grad = model.loss_grad(theta, X, y)
    ref = factory()
    with torch.no_grad():
        torch.nn.utils.vector_to_parameters(theta, ref.parameters())
    loss = F.cross_entropy(ref(X.view(2, 3, 32, 32)), y)
    loss.backward()
    torch.testing.assert_close(value, loss.detach())
    torch.testing.assert_close(grad, torch.cat([p.grad.reshape(-1) for p in ref.parameters()]), rtol=1e-4, atol=1e-6)
