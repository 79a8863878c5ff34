"""The problem: datasets, architectures and losses, and the Problem that hands them to the engine."""
