"""What a verb module hands the parser for each of its verbs."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import NamedTuple


class Verb(NamedTuple):
    """One `dicomtui VERB`: its help line, its arguments, and what it runs."""

    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
