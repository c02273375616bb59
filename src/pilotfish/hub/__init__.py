"""The hub: one API over several workers (see `hub.backend`); `pilotfish hub` runs it."""

from pilotfish.hub.backend import FederatedBackend

__all__ = ["FederatedBackend"]
