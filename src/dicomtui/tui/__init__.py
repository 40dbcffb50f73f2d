"""The console: a Textual app that sees the engine only through the Backend seam."""
