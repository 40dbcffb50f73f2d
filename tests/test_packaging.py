"""The built wheel carries the console's styles and code (styles/ lives outside src/)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from dicomtui.tui.app import DicomTUI

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contains_every_stylesheet_the_app_loads(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                    "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("dicomtui-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = {f"dicomtui/styles/{Path(p).name}" for p in DicomTUI.CSS_PATH}
    assert wanted and wanted <= names
    assert {"dicomtui/tui/app.py", "dicomtui/tui/screens/log.py"} <= names
    assert all(Path(p).is_file() for p in DicomTUI.CSS_PATH)
