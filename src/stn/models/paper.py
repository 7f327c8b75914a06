"""The paper's MNIST models (filled in by the benchmarks issue)."""
