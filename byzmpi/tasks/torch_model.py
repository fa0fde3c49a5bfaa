"""Any torch ``nn.Module`` as a byzmpi :class:`~byzmpi.tasks.models.Model` over a flat vector θ.

:class:`TorchModel` wraps a zero-argument factory returning an ``nn.Module``. Its parameters, in
``named_parameters()`` order, are the consecutive slices of one flat float32 vector θ ∈ R^d:

* **No copy of θ.** ``loss_grad(θ, X, y)`` splits θ (one ``split`` plus a ``view`` per parameter,
  no data movement), binds those views as the module's parameters for the duration of the call
  (what ``torch.func.functional_call`` does, with its bookkeeping precomputed once: about 130 µs less
  per call, which is 3 % of a LightNet step; modules with parametrizations go through
  ``functional_call`` itself), and runs it. Between calls the module holds only shapes (its own
  parameters are moved to the ``meta`` device, so there is no second copy of the weights).
* **One flat gradient.** Autograd is asked for ∂L/∂θ directly; the ``split``'s backward writes all
  parameter gradients into one fresh flat tensor (a single concatenation), which is returned.
* **Loss.** L(θ) = Σ_j w_j ℓ(f_θ(a_j), y_j) with uniform w_j = 1/B when no weights are given;
  ℓ is the cross-entropy of the logits (int64 class ids 0..C−1), or the user's per-sample loss.
  Inputs larger than ``max_batch`` are processed in chunks whose weighted sums add up (memory stays
  bounded on the server's full-data evaluations; the result equals the one-batch value for
  per-sample models).
* **Inputs.** Each row of X is one flattened sample; it is reshaped to ``input_shape`` and, when
  ``input_norm = (mean, std)`` is given (per channel, in the units X is stored in), normalised as
  (x − mean)/std in θ's dtype. Images can therefore stay uint8 in memory (4× less than float32:
  CIFAR-10's training set is 153 MB instead of 614 MB per rank) and be converted per batch.
* **Deterministic init.** ``init(gen)`` draws one seed from ``gen`` and constructs a fresh module
  under ``torch.random.fork_rng`` seeded with it, so every rank gets the same θ from the same
  generator, whatever the factory's own initialisation code does, and the global RNG is untouched.
* **Precision.** The computation runs in θ's dtype (float32 for clients, float64 when the server
  evaluates in double), with X converted to it.

Buffers (BatchNorm running statistics)
--------------------------------------
θ holds parameters only; buffers are not part of the model state that is aggregated.

* GroupNorm/LayerNorm models (the built-in default) have no statistics: nothing to decide.
* BatchNorm: ``loss_grad`` runs in training mode, i.e. normalises with the statistics of the batch
  it is given (a client's minibatch; each chunk of a chunked evaluation uses its own). The running
  statistics it would update go to a scratch copy that is never read, so a client's gradient does not
  depend on which other clients its rank computed before (results do not depend on the rank count).
* ``predict`` and ``loss`` run in evaluation mode with running statistics *recomputed for the θ
  being evaluated* from the reference data set with :meth:`TorchModel.set_reference` (the integration
  passes the honest clients' training samples): one training-mode forward pass over that data in chunks with
  cumulative averaging (BatchNorm's ``momentum=None``: the mean over the chunks of ``max_batch``
  samples of each chunk's statistics), as the RoSDHB code does before each test.
  The result is cached for that θ (compared by value). Without reference data, evaluation falls back
  to batch statistics of the evaluated chunk.

Labels and label flipping: labels are int64 class ids 0..C−1 (a binary ±1 dataset is converted
with ``(y > 0).long()``); the label-flipping attack maps y to C − 1 − y
(:func:`~byzmpi.tasks.task.flip_labels`), for the built-in data files and a user's data alike.

Dropout and other stochastic layers draw from torch's global generator and are therefore not
reproducible across rank counts; the built-in models have none.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from ..errors import ConfigError

# A fresh flat gradient of d floats is allocated per call; above glibc's mmap threshold (32 MB at most)
# every such allocation page-faults anew (ResNet-18's 44 MB: about 120 ms per allocation on these
# machines, 4 % of a step) unless torch backs it with transparent huge pages (then about 25 ms). torch
# reads the variable once, at its first allocation of 2 MB or more; an explicit setting is kept.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

#: Per-sample loss: (outputs (B, ...), labels (B,)) -> (B,) losses.
LossFn = Callable[[Tensor, Tensor], Tensor]

_BN_TYPES = (nn.modules.batchnorm._BatchNorm,)


def cross_entropy(outputs: Tensor, y: Tensor) -> Tensor:
    """Per-sample cross-entropy of logits against int64 class ids."""
    return F.cross_entropy(outputs, y, reduction="none")


class TorchModel:
    """A torch module as a Model over a flat parameter vector (see the module docstring).

    ``factory`` is called without arguments (use ``functools.partial`` for options) and must return
    a module whose forward maps (B, *input_shape) to (B, C) logits (or to what ``loss_fn`` takes).
    """

    convex = False

    def __init__(
        self,
        factory: Callable[[], nn.Module],
        *,
        input_shape: Sequence[int],
        input_norm: tuple[Sequence[float], Sequence[float]] | None = None,
        loss_fn: LossFn | None = None,
        max_batch: int = 512,
        name: str | None = None,
    ) -> None:
        self.factory = factory
        self.input_shape = tuple(int(s) for s in input_shape)
        self.loss_fn: LossFn = loss_fn or cross_entropy
        self.max_batch = int(max_batch)
        with torch.random.fork_rng(devices=[]):
            module = factory()
        if not isinstance(module, nn.Module):
            raise TypeError(f"the model factory returned {type(module).__name__}, not a torch.nn.Module")
        # the buffers' initial values are the template for fresh statistics
        self._buffer_template = {n: b.detach().clone() for n, b in module.named_buffers()}
        self.name = name or type(module).__name__
        self.names = [n for n, _ in module.named_parameters()]
        self.shapes = [tuple(p.shape) for _, p in module.named_parameters()]
        self.sizes = [math.prod(s) for s in self.shapes]
        self.dim = sum(self.sizes)
        self.buffer_names = [n for n, _ in module.named_buffers()]
        self.has_batchnorm = any(isinstance(m, _BN_TYPES) for m in module.modules())
        # where each parameter / buffer is looked up (a tied tensor has several places)
        places: dict[int, list[tuple[dict[str, Any], str]]] = {}
        for m in module.modules():
            for table in (m._parameters, m._buffers):
                for attr, t in table.items():
                    if t is not None:
                        places.setdefault(id(t), []).append((table, attr))
        self._param_places = [places[id(p)] for _, p in module.named_parameters()]
        self._buffer_places = {n: places[id(b)] for n, b in module.named_buffers()}
        # θ supplies the parameters, so the module keeps only shapes: one meta tensor per tensor,
        # put back in all its places (ties kept; Module.to("meta") would untie them)
        self._placeholders: list[tuple[dict[str, Any], str, Tensor]] = []
        for spots in places.values():
            first_table, first_attr = spots[0]
            tensor: Tensor = first_table[first_attr]
            meta = torch.empty_like(tensor, device="meta")
            if isinstance(tensor, nn.Parameter):
                meta = nn.Parameter(meta, requires_grad=tensor.requires_grad)
            for spot_table, spot_attr in spots:
                spot_table[spot_attr] = meta
                self._placeholders.append((spot_table, spot_attr, meta))
        self.module = module
        self._lean = not any(hasattr(m, "parametrizations") for m in module.modules())
        self._mode: bool | None = None
        self._scratch: dict[torch.dtype, dict[str, Tensor]] = {}
        self._norm_src = input_norm
        self._norm: dict[torch.dtype, tuple[Tensor, Tensor]] = {}
        self._reference: Tensor | None = None
        self._calibrated: tuple[Tensor, dict[str, Tensor]] | None = None
        if input_norm is not None:
            mean, std = (torch.as_tensor(v, dtype=torch.float64).reshape(-1) for v in input_norm)
            if mean.shape != std.shape or (std <= 0).any() or not bool(torch.isfinite(mean).all()):
                raise ValueError(f"input_norm must be per-channel (mean, std) with std > 0, got {input_norm}")

    # ---- the Model protocol ---------------------------------------------------------------
    def init(self, gen: torch.Generator) -> Tensor:
        """θ of a freshly constructed module, built under a torch RNG seeded from ``gen``."""
        seed = int(torch.randint(0, 2**62, (1,), generator=gen))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = self.factory()
        params = [p.detach().reshape(-1) for _, p in module.named_parameters()]
        if [tuple(p.shape) for p in module.parameters()] != self.shapes:
            raise ValueError("the model factory is not deterministic in its parameter shapes")
        return torch.cat(params).to(torch.float32)

    def loss_grad(self, theta: Tensor, X: Tensor, y: Tensor, w: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """L(θ) and ∇L(θ) as one flat tensor, in training mode (batch statistics)."""
        n = X.shape[0]
        with torch.enable_grad():
            th = theta.detach().requires_grad_(True)
            if n <= self.max_batch:
                value = self._weighted_loss(th, X, y, w, n, train=True)
                (grad,) = torch.autograd.grad(value, th)
                return value.detach(), grad
            total, grad = torch.zeros((), dtype=theta.dtype), torch.zeros_like(theta)
            for s in range(0, n, self.max_batch):
                sl = slice(s, s + self.max_batch)
                value = self._weighted_loss(th, X[sl], y[sl], None if w is None else w[sl], n, train=True)
                (g,) = torch.autograd.grad(value, th)
                grad += g
                total += value.detach()
            return total, grad

    @torch.no_grad()
    def loss(self, theta: Tensor, X: Tensor, y: Tensor, w: Tensor | None = None) -> Tensor:
        """L(θ) in evaluation mode (BatchNorm: statistics recomputed for θ from the reference data)."""
        n = X.shape[0]
        total = torch.zeros((), dtype=theta.dtype)
        for s in range(0, n, self.max_batch):
            sl = slice(s, s + self.max_batch)
            total += self._weighted_loss(theta, X[sl], y[sl], None if w is None else w[sl], n, train=False)
        return total

    @torch.no_grad()
    def predict(self, theta: Tensor, X: Tensor) -> Tensor:
        """Class ids argmax f_θ(a) in evaluation mode, chunked."""
        out = [
            self.forward(theta, X[s : s + self.max_batch], train=False).argmax(1)
            for s in range(0, X.shape[0], self.max_batch)
        ]
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.int64)

    # ---- BatchNorm statistics ---------------------------------------------------------------
    def set_reference(self, X: Tensor | None) -> None:
        """The samples whose statistics BatchNorm layers use in evaluation (the honest training data)."""
        self._reference = X
        self._calibrated = None

    @torch.no_grad()
    def calibrate(self, theta: Tensor) -> dict[str, Tensor]:
        """Running statistics of every BatchNorm layer at θ over the reference data: reset, then one
        training-mode pass with cumulative averaging (momentum None), chunks of ``max_batch``."""
        if self._calibrated is not None:
            th, bufs = self._calibrated
            if th.dtype == theta.dtype and torch.equal(th, theta):
                return bufs
        bufs = self._fresh_buffers(theta.dtype)
        if self.has_batchnorm and self._reference is not None:
            momenta = {}
            for name, m in self.module.named_modules():
                if isinstance(m, _BN_TYPES):
                    momenta[name] = m.momentum
                    m.momentum = None
            try:
                X = self._reference
                for s in range(0, X.shape[0], self.max_batch):
                    self._call(theta, self._inputs(X[s : s + self.max_batch], theta.dtype), bufs, train=True)
            finally:
                for name, m in self.module.named_modules():
                    if name in momenta:
                        m.momentum = momenta[name]
        self._calibrated = (theta.detach().clone(), bufs)
        return bufs

    # ---- internals ---------------------------------------------------------------------------
    def forward(self, theta: Tensor, X: Tensor, *, train: bool) -> Tensor:
        """Module outputs on the rows of X with parameters θ (training or evaluation mode)."""
        x = self._inputs(X, theta.dtype)
        if train or not self.has_batchnorm or self._reference is None:
            return self._call(theta, x, self._scratch_buffers(theta.dtype), train=True if self.has_batchnorm else train)
        return self._call(theta, x, self.calibrate(theta), train=False)

    def _weighted_loss(self, theta: Tensor, X: Tensor, y: Tensor, w: Tensor | None, n: int, *, train: bool) -> Tensor:
        if y.is_floating_point():
            raise TypeError("TorchModel needs int64 class ids as labels (convert ±1 labels with (y > 0).long())")
        losses = self.loss_fn(self.forward(theta, X, train=train), y)
        return losses.sum() / n if w is None else (losses * w.to(losses.dtype)).sum()

    def _call(self, theta: Tensor, x: Tensor, buffers: dict[str, Tensor], *, train: bool) -> Tensor:
        if self._mode is not train:
            self.module.train(train)
            self._mode = train
        views = torch.split(theta, self.sizes)
        if not self._lean:
            params = {n: t.view(s) for n, t, s in zip(self.names, views, self.shapes)}
            params.update(buffers)
            result: Tensor = functional_call(self.module, params, (x,), strict=True)
            return result
        try:
            for places, t, shape in zip(self._param_places, views, self.shapes):
                v = t.view(shape)
                for table, attr in places:
                    table[attr] = v
            for name, places in self._buffer_places.items():
                b = buffers[name]
                for table, attr in places:
                    table[attr] = b
            out: Tensor = self.module(x)
            return out
        finally:  # the module keeps no reference to θ or its graph
            for table, attr, placeholder in self._placeholders:
                table[attr] = placeholder

    def _inputs(self, X: Tensor, dtype: torch.dtype) -> Tensor:
        x = X.reshape(X.shape[0], *self.input_shape).to(dtype)
        if self._norm_src is None:
            return x
        if dtype not in self._norm:
            mean, std = (torch.as_tensor(v, dtype=torch.float64).reshape(-1) for v in self._norm_src)
            view = (1, -1) + (1,) * (len(self.input_shape) - 1)
            self._norm[dtype] = (mean.to(dtype).view(view), (1.0 / std).to(dtype).view(view))
        mean, inv = self._norm[dtype]
        return (x - mean).mul_(inv)

    def _fresh_buffers(self, dtype: torch.dtype) -> dict[str, Tensor]:
        return {
            n: b.to(dtype, copy=True) if b.is_floating_point() else b.clone() for n, b in self._buffer_template.items()
        }

    def _scratch_buffers(self, dtype: torch.dtype) -> dict[str, Tensor]:
        if dtype not in self._scratch:
            self._scratch[dtype] = self._fresh_buffers(dtype)
        return self._scratch[dtype]

    def __repr__(self) -> str:
        return f"TorchModel({self.name}, d={self.dim}, input_shape={self.input_shape})"


def import_object(spec: str, base: Path | None = None, *, field: str = "task.model") -> object:
    """The object named by ``"module:attr"`` (a dotted module on sys.path) or ``"file.py:attr"``
    (relative to ``base``, the config's folder). Errors are one-line ConfigErrors naming ``field``."""
    mod_name, sep, attr = spec.partition(":")
    if not sep or not mod_name or not attr:
        raise ConfigError(field, f"{spec!r} is not 'module:factory' (or 'file.py:factory')")
    try:
        if mod_name.endswith(".py"):
            path = Path(mod_name) if base is None or Path(mod_name).is_absolute() else base / mod_name
            key = f"byzmpi_model_{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]}"
            module = sys.modules.get(key)
            if module is None:
                loader_spec = importlib.util.spec_from_file_location(key, path)
                if loader_spec is None or loader_spec.loader is None:
                    raise ImportError(f"cannot load {path}")
                module = importlib.util.module_from_spec(loader_spec)
                loader_spec.loader.exec_module(module)
                sys.modules[key] = module
        else:
            module = importlib.import_module(mod_name)
    except Exception as exc:
        detail = " ".join(str(exc).split())
        raise ConfigError(field, f"cannot import {mod_name!r}: {type(exc).__name__}: {detail}") from None
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(field, f"{mod_name!r} has no attribute {attr!r}") from None
    return obj
