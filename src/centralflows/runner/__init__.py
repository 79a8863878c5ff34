"""Running one trajectory: its configuration, command line, lockstep loop, HDF5 logging and checkpoints."""
