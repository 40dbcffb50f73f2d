"""The engine: one package per capability, wired together by engine.py (ARCHITECTURE.md)."""
