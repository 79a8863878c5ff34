"""Style of the figures: the colours and labels of REFERENCE §2.0 and the line styles of thresholds."""

# REFERENCE §2.0: discrete = C0, central flow = black, its prediction = dashed black, stable flow = red.
COLORS = {
    "discrete": "C0",
    "midpoint": "C2",
    "central": "black",
    "stable": "red",
    "ablated": "red",
    "stationary": "C1",
}
LABELS = {
    "discrete": "discrete",
    "midpoint": "midpoint",
    "central": "central flow",
    "stable": "stable flow",
    "ablated": "ablated flow",
    "stationary": "stationary flow",
}
PREDICTION = {"color": "black", "linestyle": "--", "label": "central flow prediction"}
THRESHOLD = {"color": "gray", "linestyle": ":", "linewidth": 1.0}
ONSET = {"color": "gray", "linestyle": "--", "linewidth": 0.8}
