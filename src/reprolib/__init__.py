"""reprolib: reproductions of five papers on adversarial examples, and the attacks behind them."""
__version__ = "0.1.0"
