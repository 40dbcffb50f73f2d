"""Query/Retrieve over the archive index: which entities an identifier selects.

C-FIND walks PATIENT, STUDY, SERIES or IMAGE entities built from the index (patients
are grouped from studies; instances come from the study's instance file only once the
study is known) and answers the requested keys only. C-MOVE and C-GET select by the
unique keys of PS3.4 C.4.2.2.1 and need the key of their level, so an empty identifier
can never send the whole archive.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

from dicomtui.dicom.matching import QueryError, matcher_for
from dicomtui.service.archive.index import ArchiveIndex, Instance, copy_doc

LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")
UNIQUE = {
    "PATIENT": "PatientID",
    "STUDY": "StudyInstanceUID",
    "SERIES": "SeriesInstanceUID",
    "IMAGE": "SOPInstanceUID",
}
CHARSET = "ISO_IR 192"  # the index keeps text as Unicode; answers are UTF-8


@dataclass
class Entity:
    """One row at some level: its study (or patient aggregate), series and instance."""

    doc: dict
    series_uid: str = ""
    series: dict = field(default_factory=dict)
    inst: Instance | None = None


def _series_count(doc: dict) -> int:
    return len(doc["series"])


ATTRIBUTES: dict[str, tuple[int, Callable[[Entity], Any]]] = {
    "PatientID": (0, lambda e: e.doc["patient_id"]),
    "PatientName": (0, lambda e: e.doc["patient_name"]),
    "PatientBirthDate": (0, lambda e: e.doc["birth_date"]),
    "PatientSex": (0, lambda e: e.doc["sex"]),
    "NumberOfPatientRelatedStudies": (0, lambda e: e.doc.get("n_studies")),
    "NumberOfPatientRelatedSeries": (0, lambda e: e.doc.get("n_series")),
    "NumberOfPatientRelatedInstances": (0, lambda e: e.doc.get("n_instances")),
    "StudyInstanceUID": (1, lambda e: e.doc["uid"]),
    "StudyDate": (1, lambda e: e.doc["study_date"]),
    "StudyTime": (1, lambda e: e.doc["study_time"]),
    "AccessionNumber": (1, lambda e: e.doc["accession"]),
    "StudyID": (1, lambda e: e.doc["study_id"]),
    "StudyDescription": (1, lambda e: e.doc["description"]),
    "ReferringPhysicianName": (1, lambda e: e.doc["referring"]),
    "ModalitiesInStudy": (1, lambda e: modalities(e.doc)),
    "NumberOfStudyRelatedSeries": (1, lambda e: _series_count(e.doc)),
    "NumberOfStudyRelatedInstances": (1, lambda e: e.doc["instances"]),
    "SeriesInstanceUID": (2, lambda e: e.series_uid),
    "Modality": (2, lambda e: e.series.get("modality", "")),
    "SeriesNumber": (2, lambda e: e.series.get("number")),
    "SeriesDescription": (2, lambda e: e.series.get("description", "")),
    "NumberOfSeriesRelatedInstances": (2, lambda e: e.series.get("instances")),
    "SOPInstanceUID": (3, lambda e: e.inst.sop_uid if e.inst else ""),
    "SOPClassUID": (3, lambda e: e.inst.sop_class if e.inst else ""),
    "InstanceNumber": (3, lambda e: e.inst.number if e.inst else None),
}


def modalities(doc: dict) -> list[str]:
    # list() copies in one step, so a series added meanwhile cannot break the loop
    return sorted({s["modality"] for s in list(doc["series"].values()) if s["modality"]})


@dataclass
class Query:
    """A parsed identifier: its level and, per key, a matcher (None = any value)."""

    level: str
    keys: list[tuple[str, int, str, Any]]  # (keyword or "", tag, VR, raw value)
    matchers: dict[str, Callable[[Any], bool]]

    def value(self, keyword: str) -> Any:
        for kw, _tag, _vr, raw in self.keys:
            if kw == keyword:
                return raw
        return None


BAD_LEVEL = "QueryRetrieveLevel is missing or not a level of this model"


def parse(identifier: Dataset, model: str) -> Query:
    """Check the identifier against its information model ("PATIENT"/"STUDY" root)."""
    level = str(identifier.get("QueryRetrieveLevel", "") or "").strip().upper()
    if level not in LEVELS:
        raise QueryError(
            f"QueryRetrieveLevel {level or '(missing)'!r} must be one of "
            f"{', '.join(LEVELS)}",
            comment=BAD_LEVEL,
        )
    if model == "STUDY" and level == "PATIENT":
        raise QueryError("the Study Root model has no PATIENT level")
    keys, matchers = [], {}
    for elem in identifier:
        if elem.tag in (0x00080052, 0x00080005) or elem.tag.group == 0x0002:
            continue
        keyword = elem.keyword if not elem.tag.is_private else ""
        if elem.VR == "SQ":
            keys.append((keyword, int(elem.tag), "SQ", None))
            continue
        raw = elem.value
        keys.append((keyword, int(elem.tag), elem.VR, raw))
        if keyword in ATTRIBUTES:
            matcher = _matcher(keyword, elem.VR, raw)
            if matcher is not None:
                matchers[keyword] = matcher
    rank = LEVELS.index(level)
    needed = [UNIQUE[lvl] for lvl in LEVELS[1:rank]]
    for keyword in needed:  # hierarchical: unique keys of the levels above
        raw = str(identifier.get(keyword, "") or "").strip()
        if not raw or "*" in raw or "?" in raw:
            raise QueryError(
                f"a {level}-level query needs {keyword} (one value or a list of UIDs)",
                comment=f"a {level}-level query needs {keyword}",
            )
    return Query(level, keys, matchers)


def _matcher(keyword: str, vr: str, raw: Any) -> Callable[[Any], bool] | None:
    """matcher_for, with a failure that names the key (and, for the log, the value)."""
    try:
        return matcher_for(vr, raw)
    except QueryError as exc:
        raise QueryError(
            f"{keyword}: {exc}", exc.status, f"{keyword} is {exc.comment}"
        ) from None


def find(index: ArchiveIndex, query: Query, facility: str | None) -> Iterator[Entity]:
    """The entities at the query's level whose values match every key."""
    if query.level == "PATIENT":
        studies = [
            copy_doc(d)
            for d in index.live_docs()
            if facility is None or d.get("facility") == facility
        ]
        yield from _matching(patients(studies), query, 0)
        return
    matched = [Entity(copy_doc(d)) for d in _matching_docs(index, query, facility)]
    if query.level == "STUDY":
        yield from matched
        return
    series = (Entity(e.doc, uid, s) for e in matched for uid, s in e.doc["series"].items())
    matched_series = list(_matching(series, query, 2))
    if query.level == "SERIES":
        yield from matched_series
        return
    wanted = {e.series_uid: e for e in matched_series}
    for study_uid in {e.doc["uid"] for e in matched_series}:
        for inst in index.instances(study_uid):
            parent = wanted.get(inst.series_uid)
            if parent is not None and parent.doc["uid"] == study_uid:
                entity = Entity(parent.doc, parent.series_uid, parent.series, inst)
                if _matches(entity, query, 3):
                    yield entity


def _matching_docs(index: ArchiveIndex, query: Query, facility: str | None) -> list[dict]:
    """Study documents matching the study-level keys, tested in place (a copy of every
    study would cost more than the test); values are read atomically under the GIL."""
    probe, found = Entity({}), []
    for doc in index.live_docs():
        if facility is not None and doc.get("facility") != facility:
            continue
        probe.doc = doc
        if _matches(probe, query, 1):
            found.append(doc)
    return found


def _matching(entities, query: Query, rank: int) -> Iterator[Entity]:
    for entity in entities:
        if _matches(entity, query, rank):
            yield entity


def _matches(entity: Entity, query: Query, rank: int) -> bool:
    """Keys of this level and above (a series row knows its study's values too); keys
    of lower levels are not allowed in a hierarchical query and are ignored."""
    for keyword, test in query.matchers.items():
        level_of, getter = ATTRIBUTES[keyword]
        if level_of <= rank and not test(getter(entity)):
            return False
    return True


def patients(studies: list[dict]) -> list[Entity]:
    """Patient entities grouped from studies by Patient ID."""
    grouped: dict[str, dict] = {}
    for doc in studies:
        agg = grouped.get(doc["patient_id"])
        if agg is None:
            agg = grouped[doc["patient_id"]] = {
                "patient_id": doc["patient_id"],
                "patient_name": doc["patient_name"],
                "birth_date": doc["birth_date"],
                "sex": doc["sex"],
                "n_studies": 0,
                "n_series": 0,
                "n_instances": 0,
                "studies": [],
            }
        agg["n_studies"] += 1
        agg["n_series"] += len(doc["series"])
        agg["n_instances"] += doc["instances"]
        agg["studies"].append(doc)
    return [Entity(agg) for agg in grouped.values()]


def answer(entity: Entity, query: Query, retrieve_ae: str) -> Dataset:
    """The response identifier: the requested keys only, with our values."""
    ds = Dataset()
    ds.SpecificCharacterSet = CHARSET
    ds.QueryRetrieveLevel = query.level
    for keyword, tag, vr, _raw in query.keys:
        if vr == "SQ":
            ds.add_new(tag, "SQ", Sequence())
            continue
        value: Any = None
        if keyword in ATTRIBUTES:
            value = ATTRIBUTES[keyword][1](entity)
        elif keyword == "RetrieveAETitle":
            value = retrieve_ae
        elif keyword == "InstanceAvailability":
            value = "ONLINE"
        ds.add_new(tag, vr, _element_value(vr, value))
    return ds


def _element_value(vr: str, value: Any) -> Any:
    if value is None or value == "":
        return None
    if vr in ("IS", "US", "UL", "SS", "SL"):
        return int(value)
    if isinstance(value, list):
        return value or None
    return str(value)


def _uid_list(value) -> set[str]:
    """A unique key's values: one, or a list (pydicom gives a MultiValue for one that
    came with backslashes, a str for one set by hand with them)."""
    items = list(value) if isinstance(value, (list, MultiValue)) else [value or ""]
    return {v.strip() for item in items for v in str(item).split("\\") if v.strip()}


def retrieve_set(
    index: ArchiveIndex, identifier: Dataset, model: str, facility: str | None
) -> list[Instance]:
    """The instances a C-MOVE / C-GET identifier selects, by unique keys only.

    A PATIENT-level retrieve on the Study Root model is taken as on the Patient Root
    one: Orthanc sends it (and accepts it), though the Study Root model has no such
    level (README, "Query/Retrieve")."""
    level = str(identifier.get("QueryRetrieveLevel", "") or "").strip().upper()
    if model == "STUDY" and level == "PATIENT":
        model = "PATIENT"
    if level not in LEVELS:
        raise QueryError(
            f"QueryRetrieveLevel {level or '(missing)'!r} is not valid for "
            f"the {model.title()} Root model",
            comment=BAD_LEVEL,
        )
    wanted: dict[str, set[str]] = {}
    for lvl in LEVELS[
        LEVELS.index(level) if model == "STUDY" else 0 : LEVELS.index(level) + 1
    ]:
        if model == "STUDY" and lvl == "PATIENT":
            continue
        values = _uid_list(identifier.get(UNIQUE[lvl], ""))
        raw = "\\".join(values)
        if "*" in raw or "?" in raw:
            raise QueryError(f"{UNIQUE[lvl]} may not hold wildcards in a retrieve")
        if values:
            wanted[UNIQUE[lvl]] = values
        elif lvl == level:
            raise QueryError(f"a {level}-level retrieve needs {UNIQUE[level]}")
    studies = [
        d
        for d in index.all_studies()
        if (facility is None or d.get("facility") == facility)
        and ("PatientID" not in wanted or d["patient_id"] in wanted["PatientID"])
        and ("StudyInstanceUID" not in wanted or d["uid"] in wanted["StudyInstanceUID"])
    ]
    chosen: list[Instance] = []
    for doc in studies:
        for inst in index.instances(doc["uid"]):
            if (
                "SeriesInstanceUID" in wanted
                and inst.series_uid not in wanted["SeriesInstanceUID"]
            ):
                continue
            if "SOPInstanceUID" in wanted and inst.sop_uid not in wanted["SOPInstanceUID"]:
                continue
            chosen.append(inst)
    return chosen
