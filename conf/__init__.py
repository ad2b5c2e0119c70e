"""sysgym.conf."""
