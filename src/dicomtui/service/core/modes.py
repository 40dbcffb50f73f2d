"""Who may read the data dir: its owner only, unless group_read shares the images.

New files get 0600 and folders 0700 (the process umask is 077); at start, anything
more open is narrowed. With group_read, stored images and zips are 0640 in 0750
folders, and the data dir 0710 so the group can reach them; settings, the map, the
log and the journal stay 0600 always.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE = (0o600, 0o700)  # (file, folder)
SHARED = (0o640, 0o750)


def make_private() -> None:
    """From here on this process creates files 0600 and folders 0700."""
    os.umask(0o077)


def narrow(path: str | Path, allowed: int) -> None:
    """Take away the permission bits beyond `allowed` (never adds any)."""
    try:
        mode = stat.S_IMODE(os.lstat(path).st_mode)
        if mode & ~allowed:
            os.chmod(path, mode & allowed)
    except OSError:
        pass  # gone meanwhile, or not ours: the doctor reports what stays open


def narrow_data_dir(
    data_dir: Path, skip: list[Path], shared: list[Path], group_read: bool
) -> None:
    """Narrow the data dir's own files to 0600/0700, and the `shared` trees (zips) to
    what group_read allows; `skip` (storage: its own walk at receiver start) and the
    shared trees are left out of the first walk."""
    narrow(data_dir, 0o710 if group_read else 0o700)
    for dirpath, dirs, files in os.walk(data_dir):
        here = Path(dirpath)
        dirs[:] = [d for d in dirs if here / d not in skip + shared]
        if here != data_dir:
            narrow(here, PRIVATE[1])
        for name in files:
            narrow(here / name, PRIVATE[0])
    for tree in shared:
        _narrow_tree(tree, SHARED if group_read else PRIVATE)


def _narrow_tree(root: Path, modes: tuple[int, int]) -> None:
    for dirpath, _dirs, files in os.walk(root):
        narrow(dirpath, modes[1])
        for name in files:
            narrow(Path(dirpath) / name, modes[0])
