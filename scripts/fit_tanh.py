"""Fit the rational tanh of lenet5/fast/compiled/elementwise.py: tanh(x) ≈ x·P(x²)/Q(x²), Q(0) = 1.

    python scripts/fit_tanh.py [--clamp 7.9] [--p-terms 7] [--q-terms 4]

Least squares on the linearised relative error, x·P(s) − tanh(x)·Q(s) = 0 over a grid of x in
(0, clamp], reweighted after each round towards where the error is largest (Lawson's
iteration), which drives the fit towards the minimax one. Prints the coefficients, the largest
relative error in exact arithmetic, and the largest error in float32 ulps as evaluated in
float32 by Horner's rule (what the kernel does). NumPy alone.
"""

from __future__ import annotations

import argparse

import numpy as np


def fit(clamp: float, p_terms: int, q_terms: int, rounds: int = 200):
    x = np.concatenate([np.linspace(0, 1, 20_001)[1:], np.linspace(1, clamp, 40_001)])
    tanh = np.tanh(x)
    s = (x / clamp) ** 2  # scaled to [0, 1], so that the columns are of one size
    columns = np.concatenate([x[:, None] * s[:, None] ** np.arange(p_terms),
                              -tanh[:, None] * s[:, None] ** np.arange(1, q_terms)], axis=1)
    weights, best = np.ones_like(x), None
    for _ in range(rounds):
        scale = weights / tanh  # relative error
        solution, *_ = np.linalg.lstsq(columns * scale[:, None], tanh * scale, rcond=None)
        p, q = solution[:p_terms], np.concatenate([[1.0], solution[p_terms:]])
        error = np.abs(x * np.polyval(p[::-1], s) / np.polyval(q[::-1], s) - tanh) / tanh
        if best is None or error.max() < best[0]:
            best = (error.max(), p, q)
        weights = weights * np.sqrt(error / error.max()) + 1e-12
        weights /= weights.max()
    worst, p, q = best
    # Back from the scaled s = x²/clamp² to powers of x².
    return worst, p / clamp ** (2 * np.arange(p_terms)), q / clamp ** (2 * np.arange(q_terms))


def float32_ulps(clamp: float, p, q) -> float:
    x = np.concatenate([np.linspace(-12, 12, 2_000_001), np.logspace(-30, 1.2, 100_001)]).astype(np.float32)
    clamped = np.clip(x, np.float32(-clamp), np.float32(clamp))
    s = clamped * clamped
    numerator, denominator = np.float32(0), np.float32(0)
    for coefficient in p[::-1].astype(np.float32):
        numerator = numerator * s + coefficient
    for coefficient in q[::-1].astype(np.float32):
        denominator = denominator * s + coefficient
    found = clamped * numerator / denominator
    exact = np.tanh(x.astype(np.float64))
    return float((np.abs(found - exact) / np.spacing(np.abs(exact).astype(np.float32))).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clamp", type=float, default=7.9)
    parser.add_argument("--p-terms", type=int, default=7)
    parser.add_argument("--q-terms", type=int, default=4)
    args = parser.parse_args()
    worst, p, q = fit(args.clamp, args.p_terms, args.q_terms)
    print("P:", ", ".join(repr(float(c)) for c in p))
    print("Q:", ", ".join(repr(float(c)) for c in q))
    print(f"largest relative error, exact arithmetic: {worst:.2g}")
    print(f"largest error in float32: {float32_ulps(args.clamp, p, q):.2f} ulps")


if __name__ == "__main__":
    main()
