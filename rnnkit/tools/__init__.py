"""Outside the core: the command line, the demo and the benchmarks (removable without breaking rnnkit)."""
