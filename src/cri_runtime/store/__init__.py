"""In-memory indexes and on-disk state shared by pods and containers."""
