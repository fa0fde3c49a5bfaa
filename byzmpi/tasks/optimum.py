"""f* = min_θ f(θ) for convex tasks, by full-batch L-BFGS in float64, cached on disk.

Used for the optimality gap f(θ) − f* in traces. The cache key is the task's fingerprint
(honest samples, weights, model and regulariser), so any change of data, partition or Byzantine
set recomputes it.
"""

from __future__ import annotations

import json
import os

import numpy as np
import torch

from .datasets import cache_dir
from .task import Task


def solve_optimum(task: Task, *, max_rounds: int = 50, tol: float = 1e-11) -> float:
    """Minimise the honest objective with L-BFGS (strong Wolfe) until ‖∇f‖ < tol or f stops
    decreasing (float64 round-off); returns f*."""
    return solve_minimizer(task, max_rounds=max_rounds, tol=tol)[0]


def solve_minimizer(task: Task, *, max_rounds: int = 50, tol: float = 1e-11) -> tuple[float, torch.Tensor]:
    """(f, θ) at the end of the L-BFGS run from θ = 0 of :func:`solve_optimum`: the minimiser for a
    convex task, a stationary point otherwise. Deterministic (float64, no randomness)."""
    theta = torch.zeros(task.dim, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [theta],
        lr=1.0,
        max_iter=500,
        history_size=30,
        tolerance_grad=tol,
        tolerance_change=0.0,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        value, grad = task.objective(theta.detach())
        theta.grad = grad
        return torch.tensor(value, dtype=torch.float64)

    best, best_theta = float("inf"), theta.detach().clone()
    for _ in range(max_rounds):
        opt.step(closure)  # type: ignore[no-untyped-call]  # torch.optim.LBFGS.step is untyped
        value, grad = task.objective(theta.detach())
        if value < best:
            best_theta = theta.detach().clone()
        if float(grad.norm()) < tol or value >= best:
            best = min(best, value)
            break
        best = value
    return best, best_theta


def minimizer(task: Task) -> torch.Tensor:
    """x* (float64) of :func:`solve_minimizer`, cached on disk by the task's fingerprint; every rank
    that asks gets the same vector (an atomic cache write; a rank that finds no cache solves)."""
    path = cache_dir() / "optima" / f"{task.fingerprint()}.xstar.npy"
    try:
        cached = np.load(path, allow_pickle=False)
        if cached.shape == (task.dim,) and np.isfinite(cached).all():
            return torch.from_numpy(cached)
    except (OSError, ValueError):
        pass
    _, theta = solve_minimizer(task)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npy")
        np.save(tmp, theta.numpy(), allow_pickle=False)
        os.replace(tmp, path)
    except OSError:
        pass
    return theta


def optimum(task: Task) -> float | None:
    """f* for a convex task (cached), None for a task without one."""
    if not task.has_optimum:
        return None
    path = cache_dir() / "optima" / f"{task.fingerprint()}.json"
    try:
        return float(json.loads(path.read_text())["f_star"])
    except (OSError, ValueError, KeyError):
        pass
    f_star = solve_optimum(task)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"f_star": f_star}))
        os.replace(tmp, path)
    except OSError:
        pass
    return f_star
