"""northstard: a real-time P&L daemon."""

__version__ = "0.1.0"
