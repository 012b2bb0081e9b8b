"""The use cases, one module per group; wiring.py is the one composition root (adapters are built there)."""
