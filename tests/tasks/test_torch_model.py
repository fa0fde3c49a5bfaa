"""TorchModel: flat θ with parameter views, flat gradients, deterministic init, BatchNorm handling.

References are computed on the plain module with the parameters copied in (``load_flat``) and
torch's own autograd / training-mode forward, independently of the adapter's code path."""

from __future__ import annotations

import functools
import textwrap

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from byzmpi.errors import ConfigError
from byzmpi.tasks.deep_models import LightNet
from byzmpi.tasks.torch_model import TorchModel, import_object


class Small(nn.Module):
    """conv + linear with biases, 1×6×6 inputs, 3 classes."""

    def __init__(self, bn: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.bn = nn.BatchNorm2d(2) if bn else nn.Identity()
        self.fc = nn.Linear(2 * 4 * 4, 3)

    def forward(self, x):
        return self.fc(torch.tanh(self.bn(self.conv(x))).flatten(1))


def plain(factory, theta: torch.Tensor) -> nn.Module:
    """A fresh module with θ's slices copied into its parameters (named_parameters order)."""
    m = factory()
    with torch.no_grad():
        offset = 0
        for p in m.parameters():
            p.copy_(theta[offset : offset + p.numel()].view_as(p))
            offset += p.numel()
    assert offset == theta.numel()
    return m


def flat_grad(m: nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1) for p in m.parameters()])


def data(n: int = 7, seed: int = 0, shape=(1, 6, 6), classes: int = 3):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, *shape, generator=g).reshape(n, -1)
    return X, torch.randint(0, classes, (n,), generator=g)


def test_dim_and_order_follow_named_parameters():
    m = TorchModel(Small, input_shape=(1, 6, 6))
    assert m.names == ["conv.weight", "conv.bias", "fc.weight", "fc.bias"]
    assert m.dim == 2 * 9 + 2 + 3 * 32 + 3
    assert m.module.conv.weight.device.type == "meta"  # no second copy of the parameters


def test_loss_grad_matches_autograd_on_the_plain_module():
    model = TorchModel(Small, input_shape=(1, 6, 6))
    theta = model.init(torch.Generator().manual_seed(3))
    X, y = data()
    value, grad = model.loss_grad(theta, X, y)
    ref = plain(Small, theta)
    loss = F.cross_entropy(ref(X.view(-1, 1, 6, 6)), y)
    loss.backward()
    assert grad.shape == (model.dim,) and grad.dtype == torch.float32
    torch.testing.assert_close(value, loss.detach(), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(grad, flat_grad(ref), rtol=1e-5, atol=1e-7)
    # θ itself is untouched and does not require grad afterwards
    assert not theta.requires_grad


def test_parameters_are_views_of_theta_not_copies():
    seen = []

    class Probe(Small):
        def forward(self, x):
            seen.append((self.conv.weight.untyped_storage().data_ptr(), self.fc.bias.untyped_storage().data_ptr()))
            return super().forward(x)

    model = TorchModel(Probe, input_shape=(1, 6, 6))
    theta = model.init(torch.Generator().manual_seed(0))
    model.loss_grad(theta, *data())
    ptr = theta.untyped_storage().data_ptr()
    assert seen[-1] == (ptr, ptr)


def test_weights_chunks_and_float64():
    model = TorchModel(Small, input_shape=(1, 6, 6), max_batch=3)
    theta = model.init(torch.Generator().manual_seed(1))
    X, y = data(8)
    w = torch.arange(1.0, 9.0) / 36.0
    value, grad = model.loss_grad(theta, X, y, w)  # three chunks
    ref = plain(Small, theta)
    loss = (F.cross_entropy(ref(X.view(-1, 1, 6, 6)), y, reduction="none") * w).sum()
    loss.backward()
    torch.testing.assert_close(value, loss.detach(), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(grad, flat_grad(ref), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(model.loss(theta, X, y, w), loss.detach(), rtol=1e-6, atol=1e-7)
    v64, g64 = model.loss_grad(theta.double(), X.double(), y, w.double())
    assert g64.dtype == torch.float64 and v64.dtype == torch.float64
    torch.testing.assert_close(g64.float(), grad, rtol=1e-4, atol=1e-6)
    assert not torch.equal(g64.float(), grad)  # really computed in double
    pred = model.predict(theta, X)
    assert torch.equal(pred, ref(X.view(-1, 1, 6, 6)).argmax(1))


def test_init_is_seeded_and_leaves_the_global_rng_alone():
    model = TorchModel(LightNet, input_shape=(1, 28, 28))
    state = torch.random.get_rng_state()
    a = model.init(torch.Generator().manual_seed(7))
    assert torch.equal(torch.random.get_rng_state(), state)
    b = model.init(torch.Generator().manual_seed(7))
    c = model.init(torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    # the definition: one seed drawn from the generator, the module built under torch.manual_seed(seed)
    seed = int(torch.randint(0, 2**62, (1,), generator=torch.Generator().manual_seed(7)))
    torch.manual_seed(seed)
    ref = torch.cat([p.detach().reshape(-1) for p in LightNet().parameters()])
    torch.random.set_rng_state(state)
    assert torch.equal(a, ref)
    assert a.dtype == torch.float32 and a.shape == (11830,)


def test_uint8_inputs_are_normalised_per_channel():
    mean, std = (10.0, 200.0, 30.0), (2.0, 4.0, 8.0)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3 * 2 * 2, 2)

        def forward(self, x):
            return self.fc(x.flatten(1))

    model = TorchModel(Net, input_shape=(3, 2, 2), input_norm=(mean, std))
    theta = model.init(torch.Generator().manual_seed(0))
    X = torch.randint(0, 256, (5, 12), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 1, 0, 1])
    x_ref = (X.float().view(5, 3, 4) - torch.tensor(mean)[:, None]) / torch.tensor(std)[:, None]
    ref = plain(Net, theta)
    loss = F.cross_entropy(ref(x_ref.view(5, 3, 2, 2)), y)
    loss.backward()
    value, grad = model.loss_grad(theta, X, y)
    torch.testing.assert_close(value, loss.detach(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grad, flat_grad(ref), rtol=1e-5, atol=1e-6)


def test_batchnorm_uses_batch_statistics_in_training_and_a_scratch_for_running_stats():
    factory = functools.partial(Small, bn=True)
    model = TorchModel(factory, input_shape=(1, 6, 6))
    assert model.has_batchnorm
    theta = model.init(torch.Generator().manual_seed(2))
    X, y = data(6)
    v1, g1 = model.loss_grad(theta, X, y)
    v2, g2 = model.loss_grad(theta, X, y)
    assert torch.equal(g1, g2) and torch.equal(v1, v2)
    ref = plain(factory, theta).train()
    loss = F.cross_entropy(ref(X.view(-1, 1, 6, 6)), y)
    loss.backward()
    torch.testing.assert_close(g1, flat_grad(ref), rtol=1e-5, atol=1e-6)


def test_batchnorm_evaluation_recomputes_running_statistics_from_the_reference():
    factory = functools.partial(Small, bn=True)
    model = TorchModel(factory, input_shape=(1, 6, 6), max_batch=4)
    theta = model.init(torch.Generator().manual_seed(2))
    Xref, _ = data(10, seed=5)
    Xev, yev = data(5, seed=6)
    model.set_reference(Xref)
    pred = model.predict(theta, Xev)
    # definition: reset statistics, cumulative average over the reference in chunks of 4, then eval
    ref = plain(factory, theta)
    ref.bn.reset_running_stats()
    ref.bn.momentum = None
    ref.train()
    with torch.no_grad():
        for s in range(0, 10, 4):
            ref(Xref[s : s + 4].view(-1, 1, 6, 6))
    ref.eval()
    with torch.no_grad():
        out = ref(Xev.view(-1, 1, 6, 6))
    assert torch.equal(pred, out.argmax(1))
    torch.testing.assert_close(model.loss(theta, Xev, yev), F.cross_entropy(out, yev), rtol=1e-6, atol=1e-6)
    stats = model.calibrate(theta)
    torch.testing.assert_close(stats["bn.running_mean"], ref.bn.running_mean)
    torch.testing.assert_close(stats["bn.running_var"], ref.bn.running_var)
    # a different θ gets its own statistics; the same θ reuses the cached ones
    assert model.calibrate(theta) is stats
    assert model.calibrate(theta + 0.1) is not stats
    assert model.module.bn.momentum == 0.1  # restored


def test_float_labels_are_refused():
    model = TorchModel(Small, input_shape=(1, 6, 6))
    X, _ = data(3)
    with pytest.raises(TypeError, match="class ids"):
        model.loss_grad(model.init(torch.Generator().manual_seed(0)), X, torch.tensor([1.0, -1.0, 1.0]))


def test_import_object_from_a_file_and_a_module(tmp_path):
    (tmp_path / "my_models.py").write_text(
        textwrap.dedent(
            """
            from torch import nn
            def Net():
                return nn.Linear(4, 2)
            """
        )
    )
    factory = import_object("my_models.py:Net", tmp_path)
    assert TorchModel(factory, input_shape=(4,)).dim == 10
    assert import_object("byzmpi.tasks.deep_models:LightNet") is LightNet
    with pytest.raises(ConfigError, match="task.model: 'nope' is not 'module:factory'"):
        import_object("nope")
    with pytest.raises(ConfigError, match="cannot import 'missing.py'"):
        import_object("missing.py:Net", tmp_path)
    with pytest.raises(ConfigError, match="has no attribute 'Nope'"):
        import_object("my_models.py:Nope", tmp_path)


class Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 3)
        self.c = nn.Linear(4, 4)
        self.c.weight = self.a.weight  # tied: one parameter, two places

    def forward(self, x):
        return self.b(torch.tanh(self.c(torch.tanh(self.a(x)))))


class Symmetric(nn.Module):
    def forward(self, w):
        return w.triu() + w.triu(1).transpose(0, 1)


def parametrized() -> nn.Module:
    m = Tied()
    torch.nn.utils.parametrize.register_parametrization(m.a, "bias", nn.Identity())
    torch.nn.utils.parametrize.register_parametrization(m.b, "weight", nn.Identity())
    torch.nn.utils.parametrize.register_parametrization(m.c, "bias", nn.Identity())
    lin = nn.Linear(4, 4)
    torch.nn.utils.parametrize.register_parametrization(lin, "weight", Symmetric())
    return nn.Sequential(lin, m)


@pytest.mark.parametrize("factory", [Tied, parametrized])
def test_tied_and_parametrized_modules(factory):
    model = TorchModel(factory, input_shape=(4,))
    assert model._lean is (factory is Tied)
    theta = model.init(torch.Generator().manual_seed(4))
    X, y = torch.randn(5, 4, generator=torch.Generator().manual_seed(5)), torch.tensor([0, 1, 2, 1, 0])
    value, grad = model.loss_grad(theta, X, y)
    ref = plain(factory, theta)
    loss = F.cross_entropy(ref(X), y)
    loss.backward()
    torch.testing.assert_close(value, loss.detach(), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(grad, flat_grad(ref), rtol=1e-5, atol=1e-7)
    if factory is Tied:
        assert model.dim == 4 * 4 + 4 + 3 * 4 + 3 + 4
        assert model.module.a.weight is model.module.c.weight and model.module.a.weight.device.type == "meta"
