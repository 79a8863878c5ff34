"""The engine: optimizers, derivatives, eigen-tracking, the SDCP solver, and the processes
(discrete, midpoint, stable, central, ablated, stationary)."""
