"""A refusal reads in words, the same words dcmtk prints for it (PS3.8 A-ASSOCIATE-RJ
result, source and reason), in the log, the CLI and the console; records logged with
the numeric codes before read the same."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from dicomtui.cli.views import record_line
from dicomtui.wording import in_words, rejection


@pytest.mark.skipif(shutil.which("echoscu") is None, reason="dcmtk's echoscu is absent")
def test_our_logged_reason_says_what_echoscu_says(make_engine):
    engine = make_engine(require_calling_ae="true")
    shown = subprocess.run(["echoscu", "-aet", "STRANGER", "-aec", "DICOMTUI", "127.0.0.1",
                            str(engine.port)], capture_output=True, text=True, timeout=30)
    said = shown.stdout + shown.stderr
    assert shown.returncode != 0 and "Calling AE Title Not Recognized" in said, said
    assert "Rejected Permanent" in said, said
    (record,) = engine.txlog.query(types=["association"], outcomes=["refused"])
    assert record["reason"] == (
        "rejected: calling AE title STRANGER is not an allowed caller (Rejected Permanent "
        "by DICOM UL service-user: Calling AE Title Not Recognized)")
    assert "(Rejected Permanent by" in record_line(record)  # `dicomtui log`


def test_every_ps38_reason_has_words_and_old_codes_read_the_same():
    assert rejection(2, 3, 2) == ("Rejected Transient by DICOM UL service-provider "
                                  "(Presentation): Local Limit Exceeded")
    assert rejection(2, 3, 1).endswith("Temporary Congestion")
    assert rejection(1, 2, 2).endswith("Protocol Version Not Supported")
    assert rejection(1, 1, 7).endswith("Called AE Title Not Recognized")
    assert rejection(1, 1, 2).endswith("Application Context Name Not Supported")
    assert rejection(9, 9, 9) == "Result 9 by source 9: reason 9"  # unknown: still says
    old = "rejected: calling AE title X is denied (result 1, source 1, diagnostic 3)"
    assert in_words(old) == ("rejected: calling AE title X is denied (Rejected Permanent "
                             "by DICOM UL service-user: Calling AE Title Not Recognized)")
    assert "(result" not in record_line({"type": "association", "reason": old})
