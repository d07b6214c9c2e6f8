"""contextlake: a transactional SQL serving layer for real-time ML decisions."""

__version__ = "0.2.0"
