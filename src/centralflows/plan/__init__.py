"""The plan: cells, grids and scales expanded into run configs and run ids, and their job resources."""
