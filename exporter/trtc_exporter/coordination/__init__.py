"""Coordination of replicas through Redis: shared budget, membership, ownership, targets, state.

See README.md in this folder for what lives here, what it may import, and how it plugs in.
"""
