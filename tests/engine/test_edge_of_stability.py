"""GD trained into the edge of stability: the central flow stays at effective sharpness 2 and its
predicted loss tracks the time-averaged GD loss."""

import numpy as np
import pytest

from centralflows.engine.compiled import Compiled
from centralflows.engine.eigs import EigConfig
from centralflows.engine.optimizers import make_optimizer
from centralflows.engine.processes import CentralFlow, Discrete
from tests.engine.helpers import as_problem, small_synth


def moving_average(x, window=21):
    half = window // 2
    out = np.full(len(x), np.nan)
    out[half : len(x) - half] = np.convolve(x, np.ones(window) / window, mode="valid")
    return out


@pytest.mark.slow
def test_central_flow_at_the_edge_of_stability(x64):
    loss_fn, w0 = small_synth()
    opt = make_optimizer("gd", 0.5)
    kern = Compiled(as_problem(loss_fn, w0), opt)
    s0 = opt.init_state(w0)
    eig = EigConfig(frequency=1, track_threshold=1.5, max_k=4, tol=1e-9)
    discrete, central = Discrete(kern, w0, s0, eig), CentralFlow(kern, w0, s0, eig)
    disc_loss, pred_loss, central_loss, central_top, disc_top = [], [], [], [], []
    for _ in range(260):
        md, mc = discrete.measure(), central.measure()
        d, c = md.logs, mc.logs
        disc_loss.append(float(d["train_loss"]))
        disc_top.append(float(d["effective_hessian_eigs"][0]))
        pred_loss.append(float(c["predicted_loss"]))
        central_loss.append(float(c["train_loss"]))
        central_top.append(float(c["effective_hessian_eigs"][0]))
        discrete.step(md)
        central.step(mc)
    central_top = np.array(central_top)
    onset = int(np.argmax(central_top >= 2.0))
    assert 20 < onset < 120  # progressive sharpening first, then the edge
    assert max(disc_top) > 2.2  # GD really crossed 2/η and oscillates
    after = central_top[onset:]
    print(f"onset {onset}; central top eigenvalue after onset in [{after.min():.6f}, {after.max():.6f}]")
    assert np.all(np.abs(after - 2) <= 5e-3)
    ma = moving_average(np.array(disc_loss))
    sel = slice(150, 250)
    error = np.mean(np.abs(np.array(pred_loss)[sel] - ma[sel]) / ma[sel])
    print(
        f"predicted loss vs 21-step moving average of GD loss, steps 150-250: mean relative error {error:.4f}"
    )
    assert error < 0.06
    # the oscillation term tr(X) matters: L(w(t)) alone is a worse estimate of GD's average loss
    error_without = np.mean(np.abs(np.array(central_loss)[sel] - ma[sel]) / ma[sel])
    assert error < error_without
