"""sysgym.agents."""
