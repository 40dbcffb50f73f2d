"""The `dicomtui` command line (the console is its default verb)."""

from dicomtui.cli.parser import main

__all__ = ["main"]
