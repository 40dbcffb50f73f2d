"""Where things live: the data dir (XDG) and the files in it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def default_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """DICOMTUI_DATA_DIR, else $XDG_DATA_HOME/dicomtui, else ~/.local/share/dicomtui."""
    environ = os.environ if environ is None else environ
    if environ.get("DICOMTUI_DATA_DIR"):
        return Path(environ["DICOMTUI_DATA_DIR"]).expanduser()
    xdg = environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg).expanduser() / "dicomtui"


def socket_path(data_dir: Path) -> Path:
    return Path(data_dir) / "dicomtui.sock"


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """$XDG_CONFIG_HOME/dicomtui, else ~/.config/dicomtui: the console's own preferences
    (its theme), which belong to the person, not to the receiver's data dir."""
    environ = os.environ if environ is None else environ
    xdg = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(xdg).expanduser() / "dicomtui"
