"""W1.2: GD on a 2-D quadratic with lambda(q_1) > 2/eta > lambda(q_2) diverges along q_1 (computed here).

f(w) = (lambda_1 (q_1.w)^2 + lambda_2 (q_2.w)^2)/2 with [choice] eta = 1, lambda_1 = 2.1, lambda_2 = 0.3,
q_1 rotated 30 degrees from the w_1 axis, w_0 = 0.3 q_1 + 2 q_2, 20 steps. Left: the path over the loss
contours;
right: |q_i . w_t| per eigendirection (log scale).
"""

import numpy as np

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {}

ETA, LAMBDAS, ANGLE, STEPS = 1.0, (2.1, 0.3), np.pi / 6, 20


def gd_2d(eta=ETA, lambdas=LAMBDAS, angle=ANGLE, steps=STEPS):
    """(iterates [steps+1, 2], eigenvectors Q as columns, H)."""
    q = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    h = q @ np.diag(lambdas) @ q.T
    w = [q @ np.array([0.3, 2.0])]
    for _ in range(steps):
        w.append(w[-1] - eta * h @ w[-1])
    return np.array(w), q, h


def plot(table, pdf, png, params):
    w, q, h = gd_2d()
    fig, (path, coords) = plotting.subplots(2, width=4.4, height=3.8)
    r = 1.1 * np.abs(w).max()
    g = np.linspace(-r, r, 200)
    xx, yy = np.meshgrid(g, g)
    f = 0.5 * (h[0, 0] * xx**2 + 2 * h[0, 1] * xx * yy + h[1, 1] * yy**2)
    path.contour(xx, yy, f, levels=12, colors="lightgray", linewidths=0.7)
    path.plot(w[:, 0], w[:, 1], "-o", color="C0", markersize=3, linewidth=0.8, zorder=3, label="GD iterates")
    path.plot(*w[0], "s", color="black", markersize=5, zorder=4, label="$w_0$")
    for i, (color, lam) in enumerate((("C3", LAMBDAS[0]), ("C2", LAMBDAS[1]))):
        path.plot(
            [-r * q[0, i], r * q[0, i]],
            [-r * q[1, i], r * q[1, i]],
            color=color,
            linewidth=1,
            linestyle="--",
            zorder=1,
            label=f"$q_{i + 1}$ (λ = {lam:g})",
        )
    path.set(
        xlabel="$w_1$", ylabel="$w_2$", aspect="equal", title=f"2/η = {2 / ETA:g}: unstable along $q_1$ only"
    )
    path.legend(frameon=False, fontsize="x-small", loc="lower left")
    proj = np.abs(w @ q)
    coords.semilogy(proj[:, 0], "-o", color="C3", markersize=2.5, label="$|q_1^T w_t|$ (λ > 2/η)")
    coords.semilogy(proj[:, 1], "-o", color="C2", markersize=2.5, label="$|q_2^T w_t|$ (λ < 2/η)")
    coords.set(xlabel="step", ylabel="|coordinate|", title="per eigendirection")
    coords.legend(frameon=False, fontsize="small")
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
