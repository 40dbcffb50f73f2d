"""db layer (see DESIGN.md)."""
