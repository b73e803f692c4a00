"""Deterministic randomness: every random draw is a pure function of (seed, what, when)."""

from __future__ import annotations

import random
import zlib

import numpy as np

_MASK = (1 << 64) - 1


def _splitmix(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def text_key(text: str) -> int:
    """A stable integer for a name (Python's hash() is salted per process, so never use it here)."""
    return zlib.crc32(text.encode())


def mix(*parts: int) -> int:
    """Combine integers into one well-scrambled 64-bit key."""
    x = 0
    for part in parts:
        x = _splitmix(x ^ (part & _MASK))
    return x


def unit(*parts: int) -> float:
    """A uniform number in [0, 1) determined by the parts."""
    return (mix(*parts) >> 11) / float(1 << 53)


def units(*parts: int, last: np.ndarray) -> np.ndarray:
    """unit(*parts, p) for every p in `last` (same values, computed with numpy's wrapping uint64 arithmetic)."""
    x = np.uint64(mix(*parts)) ^ np.asarray(last).astype(np.uint64)
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def rng(*parts: int) -> random.Random:
    """A private generator for one (seed, subject, period) block."""
    return random.Random(mix(*parts))


def uniforms(*parts: int, shape: int | tuple[int, ...]) -> np.ndarray:
    """Uniform numbers in [0, 1) for one (seed, subject, period) block, vectorised.

    Only PCG64's raw stream and Generator.random() are used: both are fixed across numpy versions (NEP 19 lets
    numpy change its other distributions), so the market does not move when numpy is upgraded.
    """
    return np.random.Generator(np.random.PCG64(mix(*parts))).random(shape)


def gaussians(*parts: int, count: int) -> np.ndarray:
    """Standard normal numbers (Box-Muller on uniforms(), for the same version stability)."""
    pairs = (count + 1) // 2
    u = uniforms(*parts, shape=(2, pairs))
    radius = np.sqrt(-2.0 * np.log1p(-u[0]))
    angle = (2.0 * np.pi) * u[1]
    return np.concatenate((radius * np.cos(angle), radius * np.sin(angle)))[:count]
