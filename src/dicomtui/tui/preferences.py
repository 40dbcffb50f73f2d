"""The console's preferences that outlive it: the theme, in
$XDG_CONFIG_HOME/dicomtui/console.json (the person's, not the receiver's data dir).

DICOMTUI_THEME overrides the stored choice; NO_COLOR is Textual's own and still wins.
A missing or unreadable file means the default: a preference protects nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from dicomtui.locations import config_dir

FILE = "console.json"


def preferences_path() -> Path:
    return config_dir() / FILE


def chosen_theme(available: Iterable[str], default: str) -> str:
    """DICOMTUI_THEME, else the stored theme, else `default`: whichever exists."""
    known = set(available)
    for name in (os.environ.get("DICOMTUI_THEME"), _stored().get("theme")):
        if isinstance(name, str) and name in known:
            return name
    return default


def save_theme(name: str) -> Path | None:
    """Remember `name` for the next console; the file, or None when it cannot be saved
    (a read-only home: the choice then lasts this session)."""
    path = preferences_path()
    stored = _stored() | {"theme": name}
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temp = path.with_suffix(f".tmp-{os.getpid()}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(stored, out, indent=1)
        os.replace(temp, path)
    except OSError:
        return None
    return path


def _stored() -> dict:
    try:
        data = json.loads(preferences_path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
