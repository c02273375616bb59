"""pilotfish: API traffic analyzer for Kubernetes."""

__version__ = "0.1.0"
