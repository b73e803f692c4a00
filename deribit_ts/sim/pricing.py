"""Black-76 option prices, greeks and the volatility smile used for the simulated options."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
MIN_T = 1.0 / (365.0 * 1440.0)  # one minute, so prices stay finite at the expiry instant


def norm_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / _SQRT2))


def norm_pdf(x: float) -> float:
    return _INV_SQRT_2PI * math.exp(-0.5 * x * x)


def smile_vol(atm_vol: float, forward: float, strike: float, t_years: float) -> float:
    """Implied vol at a strike: a skewed parabola in standardised log-moneyness (puts richer, wings richer)."""
    t = max(t_years, MIN_T)
    k = math.log(strike / forward) / math.sqrt(t)
    k = max(-3.0, min(3.0, k))
    return max(0.05, atm_vol * (1.0 - 0.06 * k + 0.045 * k * k))


def black76_usd(call: bool, forward: float, strike: float, t_years: float, vol: float) -> float:
    """Undiscounted Black-76 value in USD (Deribit's inverse options have no rates: interest_rate = 0)."""
    t = max(t_years, MIN_T)
    sd = vol * math.sqrt(t)
    d1 = (math.log(forward / strike) + 0.5 * sd * sd) / sd
    d2 = d1 - sd
    if call:
        return forward * norm_cdf(d1) - strike * norm_cdf(d2)
    return strike * norm_cdf(-d2) - forward * norm_cdf(-d1)


def norm_cdf_array(x: np.ndarray) -> np.ndarray:
    # numpy has no erf; math.erf per element keeps candles and the scalar marks on the same function
    erf = math.erf
    return 0.5 * (1.0 + np.array([erf(v) for v in (x / _SQRT2).tolist()], dtype=np.float64))


def smile_vol_array(atm_vol: np.ndarray, forward: np.ndarray, strike: float, t_years: np.ndarray) -> np.ndarray:
    """smile_vol() over arrays."""
    t = np.maximum(t_years, MIN_T)
    k = np.clip(np.log(strike / forward) / np.sqrt(t), -3.0, 3.0)
    return np.maximum(0.05, atm_vol * (1.0 - 0.06 * k + 0.045 * k * k))


def black76_usd_array(call: bool, forward: np.ndarray, strike: float, t_years: np.ndarray,
                      vol: np.ndarray) -> np.ndarray:
    """black76_usd() over arrays."""
    t = np.maximum(t_years, MIN_T)
    sd = vol * np.sqrt(t)
    d1 = (np.log(forward / strike) + 0.5 * sd * sd) / sd
    d2 = d1 - sd
    if call:
        return forward * norm_cdf_array(d1) - strike * norm_cdf_array(d2)
    return strike * norm_cdf_array(-d2) - forward * norm_cdf_array(-d1)


@dataclass(frozen=True)
class Greeks:
    delta: float
    gamma: float
    vega: float
    theta: float
    rho: float


def greeks(call: bool, forward: float, strike: float, t_years: float, vol: float) -> Greeks:
    """Black-Scholes greeks in Deribit's units: vega per vol point, theta per day (USD), rho per 1% rate."""
    t = max(t_years, MIN_T)
    sq = math.sqrt(t)
    sd = vol * sq
    d1 = (math.log(forward / strike) + 0.5 * sd * sd) / sd
    d2 = d1 - sd
    pdf = norm_pdf(d1)
    delta = norm_cdf(d1) if call else norm_cdf(d1) - 1.0
    gamma = pdf / (forward * sd)
    vega = forward * pdf * sq / 100.0
    theta = -forward * pdf * vol / (2.0 * sq) / 365.0
    rho = (strike * t * norm_cdf(d2) if call else -strike * t * norm_cdf(-d2)) / 100.0
    return Greeks(round(delta, 5), round(gamma, 5), round(vega, 5), round(theta, 5), round(rho, 5))
