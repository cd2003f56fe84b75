"""``python -m bench chaos``: a multi-node deployment under a seeded random fault schedule."""
