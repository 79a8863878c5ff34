"""W1.1: GD on f(x) = S x^2 / 2 converges when S < 2/eta and diverges when S > 2/eta (computed here).

x_{t+1} = (1 - eta S) x_t: [choice] eta = 1, x_0 = 1, S = 1.8 (left) and S = 2.2 (right), 12 steps.
Top: the iterates on the parabola; bottom: |x_t| against the step (log scale).
"""

import numpy as np

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {}

ETA, X0, STEPS = 1.0, 1.0, 12


def gd_1d(sharpness: float, eta: float = ETA, x0: float = X0, steps: int = STEPS) -> np.ndarray:
    """Iterates x_0..x_steps of GD on S x^2 / 2."""
    return x0 * (1 - eta * sharpness) ** np.arange(steps + 1)


def plot(table, pdf, png, params):
    fig, axes = plotting.grid(2, 2, width=3.8, height=3.0)
    for col, (s, verdict) in enumerate(((1.8, "converges"), (2.2, "diverges"))):
        x = gd_1d(s)
        top, bottom = axes[0][col], axes[1][col]
        r = 1.1 * np.abs(x).max()
        grid_x = np.linspace(-r, r, 200)
        top.plot(grid_x, 0.5 * s * grid_x**2, color="gray", linewidth=1, label="$f(x) = Sx^2/2$")
        top.plot(x, 0.5 * s * x**2, "-o", color="C0", markersize=3, linewidth=0.8, label="GD iterates")
        top.set(
            xlabel="x",
            ylabel="f(x)",
            title=f"S = {s:g} {'<' if s < 2 / ETA else '>'} 2/η = {2 / ETA:g}: {verdict}",
        )
        top.legend(frameon=False, fontsize="x-small")
        bottom.semilogy(np.abs(x), "-o", color="C0", markersize=3)
        bottom.set(xlabel="step", ylabel="$|x_t|$")
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
