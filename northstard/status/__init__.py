"""What the running daemon reports about itself: its Prometheus metrics."""
