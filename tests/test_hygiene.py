"""Layering rules from ARCHITECTURE.md, checked in fresh interpreters."""

import subprocess
import sys

import pytest

CORE = ["dicomtui.service.engine", "dicomtui.daemon", "dicomtui.service.sending.sender",
        "dicomtui.db.storage", "dicomtui.db.txlog", "dicomtui.db.writer",
        "dicomtui.backend.local", "dicomtui.backend.remote", "dicomtui.control.server",
        "dicomtui.cli", "dicomtui.site_commands", "dicomtui.service.sites.sites",
        "dicomtui.privacy_commands", "dicomtui.service.privacy.privacy", "dicomtui.service.privacy.restore",
        "dicomtui.upload_commands", "dicomtui.service.shipping.shipping",
        "dicomtui.service.shipping.upload_worker", "dicomtui.service.shipping.studies",
        "dicomtui.dicom.matching", "dicomtui.service.archive.index",
        "dicomtui.service.archive.reindex", "dicomtui.service.archive.retention",
        "dicomtui.service.archive.destinations", "dicomtui.service.archive.jobs",
        "dicomtui.service.archive.query", "dicomtui.service.archive.archive",
        "dicomtui.archive_commands", "dicomtui.archive_views", "dicomtui.service.archive.archive",
        "dicomtui.service.archive.qr_handlers"]
PURE = ["dicomtui.dicom.identify", "dicomtui.dicom.layout", "dicomtui.dicom.paths",
        "dicomtui.dicom.filemeta", "dicomtui.dicom.aetitle", "dicomtui.dicom.synthetic",
        "dicomtui.db.storage", "dicomtui.db.txlog", "dicomtui.db.writer",
        "dicomtui.settings", "dicomtui.db.snapshot_table", "dicomtui.dicom.anonymize",
        "dicomtui.dicom.deid_profile", "dicomtui.db.sealed", "dicomtui.service.privacy.anonmap",
        "dicomtui.service.privacy.anonymizer", "dicomtui.service.privacy.phi", "dicomtui.service.privacy.restore",
        "dicomtui.service.shipping.upload_client", "dicomtui.service.shipping.upload_queue",
        "dicomtui.service.shipping.upload_worker", "dicomtui.service.shipping.studies",
        "dicomtui.service.shipping.zipper"]


def _loaded_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    return {name.split(".")[0] for name in out.split()}


@pytest.mark.parametrize("module", CORE)
def test_core_never_imports_textual(module):
    loaded = _loaded_after_import(module)
    assert "textual" not in loaded and "rich" not in loaded


@pytest.mark.parametrize("module", PURE)
def test_pure_layers_never_import_pynetdicom(module):
    assert "pynetdicom" not in _loaded_after_import(module)


ENGINE = ["dicomtui.service.engine", "dicomtui.service.sending.sender", "dicomtui.db.txlog",
          "dicomtui.dicom.identify", "dicomtui.service.sites.sites", "dicomtui.service.sites.access",
          "dicomtui.service.sites.facilities", "dicomtui.service.privacy.privacy",
          "dicomtui.service.privacy.anonmap", "dicomtui.service.privacy.restore", "dicomtui.service.privacy.phi",
          "dicomtui.service.shipping.shipping", "dicomtui.service.shipping.upload_worker",
          "dicomtui.service.archive.archive", "dicomtui.service.archive.index",
          "dicomtui.service.archive.query", "dicomtui.service.archive.qr_handlers",
          "dicomtui.service.archive.reindex", "dicomtui.service.archive.retention",
          "dicomtui.service.archive.destinations", "dicomtui.service.archive.jobs"]


@pytest.mark.parametrize("module", ENGINE)
def test_engine_layers_never_import_front_ends(module):
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    upward = [m for m in out if m.startswith(("dicomtui.backend", "dicomtui.control",
                                              "dicomtui.cli", "dicomtui.commands",
                                              "dicomtui.daemon"))]
    assert upward == []


TUI = ["dicomtui.tui.app", "dicomtui.tui.screens.status", "dicomtui.tui.screens.log",
       "dicomtui.tui.screens.settings", "dicomtui.tui.dialogs", "dicomtui.tui.filters",
       "dicomtui.tui.screens.facilities", "dicomtui.tui.screens.access",
       "dicomtui.tui.forms", "dicomtui.tui.screens.anonymization",
       "dicomtui.tui.screens.uploads", "dicomtui.tui.screens.upload_rows",
       "dicomtui.tui.screens.upload_dialogs", "dicomtui.tui.jobs",
       "dicomtui.tui.screens.studies", "dicomtui.tui.screens.series",
       "dicomtui.tui.screens.study_rows", "dicomtui.tui.screens.study_dialogs",
       "dicomtui.tui.screens.study_search", "dicomtui.tui.screens.storage",
       "dicomtui.tui.screens.storage_rows", "dicomtui.tui.screens.storage_dialogs"]


@pytest.mark.parametrize("module", TUI)
def test_console_sees_the_engine_only_through_the_backend(module):
    """tui/ never loads pynetdicom, TinyDB, or the engine and DB layers (ARCHITECTURE.md)."""
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert not {"pynetdicom", "tinydb"} & {name.split(".")[0] for name in out}
    assert [m for m in out if m.startswith(("dicomtui.service", "dicomtui.db"))] == []
