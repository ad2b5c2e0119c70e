"""sysgym.experiments."""
