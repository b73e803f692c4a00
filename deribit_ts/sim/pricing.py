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


def black76_usd_array(
    call: bool, forward: np.ndarray, strike: float, t_years: np.ndarray, vol: np.ndarray
) -> np.ndarray:
    """black76_usd() over arrays."""
    t = np.maximum(t_years, MIN_T)
    sd = vol * np.sqrt(t)
    d1 = (np.log(forward / strike) + 0.5 * sd * sd) / sd
    d2 = d1 - sd
    if call:
        return forward * norm_cdf_array(d1) - strike * norm_cdf_array(d2)
    return strike * norm_cdf_array(-d2) - forward * norm_cdf_array(-d1)


# ---- Deribit's option conventions (docs/deribit.md), vectorised over a chain ----------------------------------
def _norm_cdf_exact(x: np.ndarray) -> np.ndarray:
    """N(x) through erfc, accurate in both tails (deep wings' prices and rho)."""
    erfc = math.erfc
    return 0.5 * np.array([erfc(-v / _SQRT2) for v in np.asarray(x, dtype=np.float64).tolist()], dtype=np.float64)


@dataclass(frozen=True)
class ChainQuotes:
    """Black-76 values and greeks of many options, in Deribit's units (arrays, one entry per option)."""

    price_usd: np.ndarray  # undiscounted Black-76 value in USD (r = 0)
    delta: np.ndarray  # N(d1) or N(d1) - 1: not premium-adjusted
    gamma: np.ndarray  # per 1 USD of the forward, unrounded
    vega: np.ndarray  # USD per vol point
    theta: np.ndarray  # USD per day, capped at the time value left (min of 1-day and lifetime theta)
    rho: np.ndarray  # spot-style: K T N(d2) / 100 (call), -K T N(-d2) / 100 (put)


def chain_quotes(
    call: np.ndarray, forward: np.ndarray, strike: np.ndarray, years: np.ndarray, vol: np.ndarray
) -> ChainQuotes:
    """Deribit's ticker numbers (before rounding) for options with the given inputs, as the exchange computes
    them: Black-76 on the forward, r = 0, T in 365-day years, sigma = mark_iv / 100. deribit.black76_greeks in SQL
    is the same formula."""
    call = np.asarray(call, dtype=bool)
    f, k = np.asarray(forward, dtype=np.float64), np.asarray(strike, dtype=np.float64)
    t = np.maximum(np.asarray(years, dtype=np.float64), MIN_T)
    s = np.asarray(vol, dtype=np.float64)
    sq = np.sqrt(t)
    sd = s * sq
    d1 = (np.log(f / k) + 0.5 * sd * sd) / sd
    d2 = d1 - sd
    nd1, nd2 = _norm_cdf_exact(d1), _norm_cdf_exact(d2)
    n_d1, n_d2 = _norm_cdf_exact(-d1), _norm_cdf_exact(-d2)
    pdf = _INV_SQRT_2PI * np.exp(-0.5 * d1 * d1)
    price = np.where(call, f * nd1 - k * nd2, k * n_d2 - f * n_d1)
    intrinsic = np.where(call, np.maximum(f - k, 0.0), np.maximum(k - f, 0.0))
    theta = np.maximum(-f * pdf * s / (2.0 * sq) / 365.0, intrinsic - price)
    return ChainQuotes(
        price,
        np.where(call, nd1, nd1 - 1.0),
        pdf / (f * sd),
        f * pdf * sq / 100.0,
        theta,
        np.where(call, k * t * nd2, -k * t * n_d2) / 100.0,
    )


def implied_vol(
    call: bool, forward: float, strike: float, years: float, price_usd: float, low: float = 0.01, high: float = 10.0
) -> float:
    """The Black-76 vol (fraction) that prices the option at `price_usd`, by bisection in [low, high]: 0 where the
    price is at or below intrinsic (no vol fits), `high` where even that vol is too cheap. Scalar: a ticker
    inverts two prices (bid and ask), where numpy's per-call overhead would cost more than the arithmetic."""
    intrinsic = max(forward - strike, 0.0) if call else max(strike - forward, 0.0)
    if price_usd <= intrinsic:
        return 0.0
    t = max(years, MIN_T)
    sq = math.sqrt(t)
    log_fk = math.log(forward / strike)
    for _ in range(30):  # 10 / 2^30: far below the 0.01 vol point Deribit prints
        mid = 0.5 * (low + high)
        sd = mid * sq
        d1 = (log_fk + 0.5 * sd * sd) / sd
        if call:
            value = forward * 0.5 * math.erfc(-d1 / _SQRT2) - strike * 0.5 * math.erfc(-(d1 - sd) / _SQRT2)
        else:
            value = strike * 0.5 * math.erfc((d1 - sd) / _SQRT2) - forward * 0.5 * math.erfc(d1 / _SQRT2)
        if value < price_usd:
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)
