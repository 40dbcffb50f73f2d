"""backend layer (see DESIGN.md)."""
