"""The profile, the anonymizer and the map, on real datasets and real files."""

from __future__ import annotations

import copy
import os
import stat
import threading

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from dicomtui.db.sealed import SealError, load_key, new_key_file
from dicomtui.dicom.anonymize import anonymize, new_uid, restore, subject_key
from dicomtui.dicom.deid_profile import BASIC_PROFILE, action_for
from dicomtui.service.privacy.anonmap import AnonymizationMap, MapError
from dicomtui.service.privacy.phi import MASK, KnownValues, mask


def ct() -> Dataset:
    return dcmread(get_testdata_file("CT_small.dcm", download=False))


def test_the_profile_table_is_the_standards():
    assert len(BASIC_PROFILE) > 600  # Table E.1-1 lists ~620 attributes
    assert action_for(0x00100010) == "Z"  # Patient's Name
    assert action_for(0x00100020) == "D"  # Patient ID: Z/D
    assert action_for(0x00080080) == "D"  # Institution Name: X/Z/D
    assert action_for(0x00081140) == "U"  # Referenced Image Sequence: X/Z/U*
    assert action_for(0x00100030) == "Z"  # Birth Date
    assert action_for(0x60023000) == "X" and action_for(0x50101234) == "X"
    assert action_for(0x00080016) is None  # SOP Class UID: kept
    assert action_for(0x7FE00010) is None  # Pixel Data: kept


def test_identity_becomes_the_subject_code_and_the_dataset_says_how():
    ds = ct()
    ds.InstitutionName, ds.ReferringPhysicianName = "St. Elsewhere", "HOUSE^GREGORY"
    anonymize(ds, "sub-007")
    assert ds.PatientName == "sub-007" and ds.PatientID == "sub-007"
    assert ds.PatientIdentityRemoved == "YES"
    assert "Basic" in ds.DeidentificationMethod
    codes = [(i.CodeValue, i.CodingSchemeDesignator) for i in
             ds.DeidentificationMethodCodeSequence]
    assert codes == [("113100", "DCM"), ("113110", "DCM")]  # basic + retain UIDs
    assert ds.InstitutionName == "ANON"
    assert not ds.ReferringPhysicianName and "ReferringPhysicianName" in ds  # Z: empty
    assert "PatientBirthDate" not in ds or ds.PatientBirthDate == ""
    assert not [e for e in ds if e.tag.is_private]


def test_sequences_are_cleaned_inside_and_restored_whole():
    ds = ct()
    item = Dataset()
    item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    item.ReferencedSOPInstanceUID = "1.2.3.4.5"
    item.add_new(0x00091001, "LO", "vendor secret")
    ds.ReferencedImageSequence = Sequence([item])
    person = Dataset()
    person.PersonName = "NURSE^JACKIE"
    ds.add_new(0x00081084, "SQ", Sequence([person]))  # AdmittingDiagnosesCodeSequence: X
    original = copy.deepcopy(ds)
    originals = anonymize(ds, "sub-001", uid_secret="s3cret")
    ref = ds.ReferencedImageSequence[0]
    assert ref.ReferencedSOPInstanceUID == new_uid("s3cret", "1.2.3.4.5")
    assert 0x00091001 not in ref
    assert 0x00081084 not in ds
    restore(ds, originals)
    assert ds.ReferencedImageSequence == original.ReferencedImageSequence
    assert ds[0x00081084].value == original[0x00081084].value
    for elem in original:
        if not elem.tag.is_private:
            assert ds[elem.tag] == elem, elem.tag


def test_uids_are_kept_by_default_and_replaced_consistently_when_asked():
    a, b = ct(), ct()
    kept = a.StudyInstanceUID
    anonymize(a, "sub-001")
    assert a.StudyInstanceUID == kept
    anonymize(b, "sub-001", uid_secret="x")
    c = ct()
    anonymize(c, "sub-001", uid_secret="x")
    assert b.StudyInstanceUID != kept and b.StudyInstanceUID == c.StudyInstanceUID
    assert b.SOPInstanceUID == c.SOPInstanceUID and len(b.SOPInstanceUID) <= 64
    assert [(i.CodeValue) for i in b.DeidentificationMethodCodeSequence] == ["113100"]
    d = ct()
    anonymize(d, "sub-001", uid_secret="another secret")
    assert d.StudyInstanceUID != b.StudyInstanceUID


def test_subject_key_is_id_plus_issuer_and_the_name_only_without_an_id():
    ds = ct()
    ds.IssuerOfPatientID = "HOSP-A"
    assert subject_key(ds) == ("1CT1", "HOSP-A", "")
    ds.PatientID = ""
    assert subject_key(ds) == ("", "HOSP-A", "CompressedSamples^CT1")


# -- the map -------------------------------------------------------------------------
def _record(amap: AnonymizationMap, ds: Dataset) -> tuple[str, dict]:
    key = subject_key(ds)
    code = amap.subject_for(key, str(ds.PatientName), "2026-11-23T10:00:00")
    originals = anonymize(ds, code)
    item = amap.add_instance(code, ds.StudyInstanceUID, ds.SOPInstanceUID, originals,
                             "2026-11-23T10:00:01")
    amap.record_instance(item)
    amap.flush()
    return code, originals


def test_codes_are_stable_across_reopening_and_never_reused(tmp_path):
    path = tmp_path / "anonymization.json"
    amap = AnonymizationMap(path)
    first = ct()
    second = ct()
    second.PatientID = "OTHER"
    assert _record(amap, first)[0] == "sub-001"
    assert _record(amap, second)[0] == "sub-002"
    amap.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = AnonymizationMap(path)
    third = ct()
    third.PatientID = "THIRD"
    assert again.subject_for(subject_key(ct()), "x", "t") == "sub-001"
    assert _record(again, third)[0] == "sub-003"
    docs = {d["code"]: d for d in again.subjects()}
    assert docs["sub-001"]["patient_id"] == "1CT1" and docs["sub-001"]["instances"] == 1


def test_concurrent_allocation_gives_one_code_per_patient(tmp_path):
    amap = AnonymizationMap(tmp_path / "anonymization.json")
    got: dict[str, set[str]] = {}
    lock = threading.Lock()

    def work(n: int) -> None:
        for i in range(20):
            pid = f"P{(n + i) % 5}"
            code = amap.subject_for((pid, "", ""), pid, "t")
            with lock:
                got.setdefault(pid, set()).add(code)
    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(len(codes) == 1 for codes in got.values())
    assert len({next(iter(c)) for c in got.values()}) == 5


def test_per_instance_values_restore_each_instance_exactly(tmp_path):
    amap = AnonymizationMap(tmp_path / "anonymization.json")
    originals = []
    for n in range(3):
        ds = ct()
        ds.SOPInstanceUID = f"1.2.3.{n}"
        ds.ContentTime = f"10000{n}"
        originals.append(copy.deepcopy(ds))
        _record(amap, ds)
        (tmp_path / f"{n}.dcm").write_bytes(b"")
    amap.close()
    reader = AnonymizationMap(tmp_path / "anonymization.json", writable=False)
    for original in originals:
        values = reader.originals_for("sub-001", original.StudyInstanceUID,
                                      original.SOPInstanceUID)
        ds = copy.deepcopy(original)
        anonymize(ds, "sub-001")
        restore(ds, values)
        assert ds.ContentTime == original.ContentTime
        assert ds.PatientName == original.PatientName
    with pytest.raises(MapError, match="sub-009"):
        reader.originals_for("sub-009", originals[0].StudyInstanceUID, "1.2.3.0")
    with pytest.raises(MapError, match="not in this map"):
        reader.originals_for("sub-001", originals[0].StudyInstanceUID, "9.9.9")


def test_an_encrypted_map_has_no_identity_in_its_bytes_and_needs_its_key(tmp_path):
    key_file = new_key_file(tmp_path / "map.key")
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    with pytest.raises(SealError, match="already exists"):
        new_key_file(key_file)
    path = tmp_path / "anonymization.json"
    amap = AnonymizationMap(path, load_key(key_file))
    _record(amap, ct())
    amap.close()
    for file in [path, *(tmp_path / "anonymization").iterdir()]:
        data = file.read_bytes()
        assert b"1CT1" not in data and b"CompressedSamples" not in data
        assert not data.startswith(b"{")
    other = new_key_file(tmp_path / "other.key")
    with pytest.raises(MapError, match="cannot be decrypted"):
        AnonymizationMap(path, load_key(other))
    with pytest.raises(MapError, match="encrypted"):
        AnonymizationMap(path, None)
    (tmp_path / "bad.key").write_text("not a key")
    with pytest.raises(SealError, match="Fernet"):
        load_key(tmp_path / "bad.key")


def test_setting_a_key_on_a_plain_map_encrypts_every_file(tmp_path):
    path = tmp_path / "anonymization.json"
    amap = AnonymizationMap(path)
    _record(amap, ct())
    amap.close()
    assert b"1CT1" in path.read_bytes()
    key = load_key(new_key_file(tmp_path / "k"))
    sealed = AnonymizationMap(path, key)
    sealed.close()
    for file in [path, *(tmp_path / "anonymization").iterdir()]:
        assert b"1CT1" not in file.read_bytes()
    assert AnonymizationMap(path, key).subjects()[0]["patient_id"] == "1CT1"


def test_a_damaged_map_is_left_alone_and_refused(tmp_path):
    path = tmp_path / "anonymization.json"
    path.write_text('{"subjects": [1, 2')
    with pytest.raises(MapError, match="damaged"):
        AnonymizationMap(path)
    assert path.read_text() == '{"subjects": [1, 2'


# -- log masking ------------------------------------------------------------------------
def test_dataset_dumps_and_known_values_are_masked_in_log_text():
    from pynetdicom.dsutils import pretty_dataset
    ds = ct()
    dump = "\n".join(pretty_dataset(ds))
    masked = mask(dump, KnownValues())
    assert "CompressedSamples" not in masked and "1CT1" not in masked
    assert "CompressedSamples" not in mask(str(ds), KnownValues())
    known = KnownValues()
    known.note("PID-4711", "MÜLLER^HANS")
    line = "write failed in /data/PID-4711/1.2.3: MÜLLER^HANS (Hans) patient_id='PID-4711'"
    out = mask(line, known)
    assert "PID-4711" not in out and "MÜLLER" not in out and MASK in out
    assert "1.2.3" in out  # the rest of the line still says what happened
    assert mask("store from CT1 (127.0.0.1:4000): ok", known) == \
        "store from CT1 (127.0.0.1:4000): ok"
