"""Raw SVI fitted to one smile, and its butterfly-arbitrage check.

Raw SVI (Gatheral 2004) gives the total implied variance w = iv^2 * T of log-moneyness k = ln(K/F):

    w(k) = a + b * (rho * (k - m) + sqrt((k - m)^2 + sigma^2))

The fit is Zeliade's quasi-explicit method (De Marco & Martini, "Quasi-explicit calibration of Gatheral's SVI
model", 2009): for fixed (m, sigma), with y = (k - m) / sigma, w is linear in (a, d, c) = (a, rho b sigma, b sigma):
w = a + d y + c sqrt(y^2 + 1). Their admissible domain 0 <= c <= 4 sigma, |d| <= c, |d| <= 4 sigma - c,
0 <= a <= max(w) (Roger Lee's moment bound b (1 + |rho|) <= 4 and a non-negative minimum) is a box in
(a, u, v) = (a, c + d, c - d): u, v in [0, 4 sigma], so the inner problem is a bounded linear least squares with
an exact solution, and only (m, sigma) are searched (a coarse grid, then Levenberg-Marquardt from its best
points).

Butterfly arbitrage: the slice admits it where Gatheral's density factor
g(k) = (1 - k w' / (2 w))^2 - w'^2 / 4 (1 / w + 1 / 4) + w'' / 2 is negative (or w is not positive), checked on a
grid one unit of log-moneyness beyond the quoted strikes on each side.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

MIN_STRIKES = 5  # fewer points than that do not determine five parameters with any confidence
_SIGMA_BOUNDS = (1e-4, 5.0)
_GRID_POINTS = 2001
_G_TOLERANCE = -1e-10  # rounding, not arbitrage


@dataclass(frozen=True)
class SviFit:
    a: float
    b: float
    rho: float
    m: float
    sigma: float
    rmse_iv: float  # root mean square of fitted IV - quoted IV, in vol points (percent)
    butterfly_arbitrage: bool

    def total_variance(self, k: np.ndarray) -> np.ndarray:
        return svi_total_variance(k, self.a, self.b, self.rho, self.m, self.sigma)


def svi_total_variance(k, a: float, b: float, rho: float, m: float, sigma: float):
    x = np.asarray(k, dtype=float) - m
    return a + b * (rho * x + np.sqrt(x * x + sigma * sigma))


# Every face of the 3-variable box: per variable 0 = free, 1 = at zero, 2 = at its upper bound.
_FACES = np.array(list(itertools.product((0, 1, 2), repeat=3)))
_FIXED = _FACES != 0


def _box_lsq(gram: np.ndarray, rhs: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """argmin |A x - w|^2 over 0 <= x <= upper, from the normal equations (gram = A'A, rhs = A'w). The optimum of
    a convex problem lies inside some face of the box, where it is the unconstrained optimum over that face: the
    best feasible one of the 27 faces' solutions is exact. All 27 are solved at once (a fixed variable's row of
    the system says x_i = its bound)."""
    values = np.where(_FACES == 2, upper, 0.0)  # (27, 3) the fixed variables' values
    systems = np.where(_FIXED[:, :, None], np.eye(3)[None, :, :], gram[None, :, :])
    targets = np.where(_FIXED, values, rhs[None, :])
    x = np.linalg.solve(systems + 1e-18 * np.eye(3), targets[..., None])[..., 0]
    feasible = np.all((x >= -1e-15) & (x <= upper + 1e-15), axis=1)
    x = np.clip(x[feasible], 0, upper)
    objective = np.einsum("fi,ij,fj->f", x, gram, x) - 2 * x @ rhs
    return x[np.argmin(objective)]


def _inner(k: np.ndarray, w: np.ndarray, m: float, sigma: float) -> tuple[float, np.ndarray, np.ndarray]:
    """Best (a, u, v) for this (m, sigma): its sum of squared residuals, the solution, the residuals."""
    y = (k - m) / sigma
    z = np.sqrt(y * y + 1)
    design = np.column_stack([np.ones_like(y), (z + y) / 2, (z - y) / 2])
    upper = np.array([max(float(w.max()), 1e-12), 4 * sigma, 4 * sigma])
    gram, rhs = design.T @ design, design.T @ w
    # the unconstrained solution first: inside the box it is the answer (most of the time)
    try:
        x = np.linalg.solve(gram, rhs)
    except np.linalg.LinAlgError:
        x = np.full(3, -1.0)
    if np.any(x < 0) or np.any(x > upper):
        x = _box_lsq(gram, rhs, upper)
    residual = design @ x - w
    return float(residual @ residual), x, residual


def _raw(m: float, sigma: float, a: float, u: float, v: float) -> tuple[float, float, float, float, float]:
    c, d = (u + v) / 2, (u - v) / 2
    b = c / sigma
    rho = d / c if c > 0 else 0.0
    return a, b, max(-1.0, min(1.0, rho)), m, sigma


def butterfly_arbitrage(k_low: float, k_high: float, a: float, b: float, rho: float, m: float, sigma: float) -> bool:
    """Whether the slice's density is negative (or its variance not positive) anywhere in [k_low - 1, k_high + 1]."""
    k = np.linspace(k_low - 1, k_high + 1, _GRID_POINTS)
    x = k - m
    root = np.sqrt(x * x + sigma * sigma)
    w = a + b * (rho * x + root)
    if np.any(w <= 0):
        return True
    w1 = b * (rho + x / root)
    w2 = b * sigma * sigma / root**3
    g = (1 - k * w1 / (2 * w)) ** 2 - w1 * w1 / 4 * (1 / w + 0.25) + w2 / 2
    return bool(np.min(g) < _G_TOLERANCE)


def _grid_starts(k: np.ndarray, w: np.ndarray, m_low: float, m_high: float, starts: int = 2) -> list[tuple]:
    """The best few (m, sigma) of a coarse grid, ranked by the unconstrained inner fit (all grid points solved at
    once): Nelder-Mead then starts near the global minimum instead of wandering to it."""
    ms = np.linspace(m_low, m_high, 25)
    sigmas = np.geomspace(0.01, 2.0, 20)
    mm, ss = (g.ravel() for g in np.meshgrid(ms, sigmas))
    y = (k[None, :] - mm[:, None]) / ss[:, None]
    z = np.sqrt(y * y + 1)
    design = np.stack([np.ones_like(y), (z + y) / 2, (z - y) / 2], axis=2)  # (grid, points, 3)
    normal = np.einsum("gpi,gpj->gij", design, design) + 1e-14 * np.eye(3)
    x = np.linalg.solve(normal, np.einsum("gpi,p->gi", design, w)[..., None])[..., 0]
    residual = np.einsum("gpi,gi->gp", design, x) - w
    score = np.einsum("gp,gp->g", residual, residual)
    order = np.argsort(score)[:starts]
    return [(float(mm[i]), float(ss[i])) for i in order]


def fit_svi(log_moneyness, iv_pct, years: float) -> SviFit | None:
    """Raw SVI fitted to one smile: log-moneyness ln(K/F) and IVs in percent at one expiry `years` away. None with
    fewer than MIN_STRIKES distinct strikes, a non-positive T, or nothing finite to fit."""
    k = np.asarray(log_moneyness, dtype=float)
    iv = np.asarray(iv_pct, dtype=float)
    keep = np.isfinite(k) & np.isfinite(iv) & (iv > 0)
    k, iv = k[keep], iv[keep]
    if years <= 0 or len(np.unique(k)) < MIN_STRIKES:
        return None
    w = (iv / 100) ** 2 * years
    span = float(k.max() - k.min()) or 1.0
    m_low, m_high = float(k.min()) - span, float(k.max()) + span

    def residuals(p: np.ndarray) -> np.ndarray:
        return _inner(k, w, float(p[0]), math.exp(float(p[1])))[2]

    # (m, sigma) by a trust-region Gauss-Newton on the residuals of the exact inner solution (variable
    # projection), within bounds: a few dozen evaluations from the best points of the grid
    bounds = ([m_low, math.log(_SIGMA_BOUNDS[0])], [m_high, math.log(_SIGMA_BOUNDS[1])])
    best = None
    for m0, sigma0 in _grid_starts(k, w, m_low, m_high):
        start = np.clip([m0, math.log(sigma0)], bounds[0], bounds[1])
        found = least_squares(
            residuals, start, bounds=bounds, method="trf", xtol=1e-14, ftol=1e-15, gtol=1e-15, max_nfev=100
        )
        cost = float(found.fun @ found.fun)
        if best is None or cost < best[0]:
            best = (cost, found.x)
    m, sigma = float(best[1][0]), math.exp(float(best[1][1]))
    a, b, rho, m, sigma = _raw(m, sigma, *_inner(k, w, m, sigma)[1])
    fitted_iv = 100 * np.sqrt(np.maximum(svi_total_variance(k, a, b, rho, m, sigma), 0) / years)
    rmse = float(np.sqrt(np.mean((fitted_iv - iv) ** 2)))
    arbitrage = butterfly_arbitrage(float(k.min()), float(k.max()), a, b, rho, m, sigma)
    return SviFit(float(a), float(b), float(rho), float(m), float(sigma), rmse, arbitrage)
