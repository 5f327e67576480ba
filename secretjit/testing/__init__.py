"""Evidence for secret kernels: erasure assertions and the detectors behind them."""
