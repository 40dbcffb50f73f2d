"""Privacy: anonymization on receive, the map behind it, and de-identified logs.

The map opens on first need (a store to anonymize, a front end listing subjects) and
again when `anonymization_key_file` changes. If it cannot be opened, instances that
must be anonymized are refused with the reason: never stored with their identities.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import orjson
from cryptography.fernet import Fernet, InvalidToken

from dicomtui.db.sealed import SealError, load_key
from dicomtui.db.state import Manifest
from dicomtui.db.writer import DBWriter
from dicomtui.models import MASK, AnonExport, AnonSubject
from dicomtui.service.privacy.anonmap import AnonymizationMap, MapError
from dicomtui.service.privacy.anonymizer import Anonymizer
from dicomtui.service.privacy.phi import PHI_FILTER
from dicomtui.settings import Resolved

LOG = logging.getLogger("dicomtui.service")
MAP_FILE = "anonymization.json"


class PrivacyError(ValueError):
    """A request about the map that cannot be done as asked (bad export path, ...)."""


class AnonymizationUnavailable(RuntimeError):
    """Anonymization is required but the map cannot be opened; says why."""


class Privacy:
    """Owns the open anonymization map (opened on first need) and the log masking."""

    def __init__(
        self,
        data_dir: Path,
        writer: DBWriter,
        settings: Callable[[], Resolved],
        choice_of: Callable[[str], str],
        choices: Callable[[], set[str]],
        manifest: Manifest,
    ) -> None:
        self.data_dir, self._writer, self._manifest = data_dir, writer, manifest
        self._settings, self._choice_of = settings, choice_of  # a facility's choice
        self._choices = choices  # every facility's choice
        self._anon: Anonymizer | None = None
        self._anon_key_file: str | None = None
        self._anon_lock = threading.Lock()
        self.anon_error = ""
        writer.register("anon", lambda batch: None, self._anon_flush)  # "save me"
        self.apply_settings()

    @property
    def settings(self) -> Resolved:
        return self._settings()

    def apply_settings(self) -> None:
        """Settings changed: mask logs or not (deidentify_logs)."""
        PHI_FILTER.enabled = self.settings.deidentify_logs

    def anonymizes(self, facility: str) -> bool:
        """Whether instances of this facility are anonymized before they are written."""
        choice = self._choice_of(facility)
        return self.settings.anonymize if choice == "default" else choice == "on"

    def in_use(self) -> bool:
        """Some instance may be anonymized: the setting, or a facility's own choice."""
        return self.settings.anonymize or "on" in self._choices()

    def anonymizer(self) -> Anonymizer:
        """The open anonymizer (AnonymizationUnavailable if the map cannot be opened)."""
        key_file = self.settings.anonymization_key_file
        anon = self._anon
        if anon is not None and self._anon_key_file == key_file:
            return anon
        with self._anon_lock:
            if self._anon is None or self._anon_key_file != key_file:
                return self._open_anon_map(key_file)
            return self._anon

    def _open_anon_map(self, key_file: str) -> Anonymizer:
        self._close_anon_map()
        try:
            key = load_key(key_file) if key_file else None
            amap = _open_map(self.data_dir / MAP_FILE, key, self._manifest)
        except (SealError, MapError) as exc:
            if str(exc) != self.anon_error:
                LOG.error("anonymization map unavailable: %s", exc)
            self.anon_error = str(exc)
            raise AnonymizationUnavailable(str(exc)) from None
        self._anon = Anonymizer(amap)
        self._anon_key_file, self.anon_error = key_file, ""
        return self._anon

    def close(self) -> None:
        """Save what the map holds and close it (the DB writer is still running)."""
        self._close_anon_map()

    def _close_anon_map(self) -> None:
        if self._anon is not None:
            self._writer.flush()
            self._anon.map.close()
            self._anon = None

    # -- an acknowledged instance's originals -------------------------------------------
    def record(self, originals: dict) -> None:
        """Keep an anonymized instance's own originals (it is acknowledged)."""
        self.anonymizer().map.record_instance(originals)
        self._writer.put("anon", None)

    def recover(self, originals: dict) -> bool:
        """A journaled instance's originals, unless the map has them already."""
        added = self.anonymizer().map.record_instance(originals, once=True)
        if added:
            self._writer.put("anon", None)
        return added

    def seal(self, originals: dict) -> dict:
        """Originals as the journal keeps them: encrypted with the map's key if set."""
        key = self.anonymizer().map.key
        if key is None:
            return originals
        return {"sealed": Fernet(key).encrypt(orjson.dumps(originals)).decode()}

    def unseal(self, kept: dict) -> dict:
        """What seal() gave, back (AnonymizationUnavailable without the right key)."""
        if "sealed" not in kept:
            return kept
        key = self.anonymizer().map.key
        try:
            return orjson.loads(Fernet(key or b"").decrypt(kept["sealed"].encode()))
        except (InvalidToken, ValueError) as exc:
            raise AnonymizationUnavailable(
                "journaled originals cannot be decrypted with the map's key "
                f"({type(exc).__name__}); set the anonymization_key_file they were "
                "written with"
            ) from None

    def originals_many(self, keys: list[tuple[str, str, str]]) -> list[dict]:
        """Originals for restore, per (code, study UID, SOP UID): {"originals": ...} or
        {"error": why}; PrivacyError if there is no map to ask."""
        if self._anon is None and not (self.data_dir / MAP_FILE).exists():
            raise PrivacyError("this data dir has no anonymization map")
        try:
            return self.anonymizer().map.originals_many(keys)
        except AnonymizationUnavailable as exc:
            raise PrivacyError(str(exc)) from None

    # -- DB writer sink ---------------------------------------------------------------
    def _anon_flush(self) -> None:
        if self._anon is not None:
            self._anon.map.flush()

    # -- front ends ---------------------------------------------------------------------
    def anon_subjects(self, search: str = "", reveal: bool = False) -> list[AnonSubject]:
        if self._anon is None and not (self.data_dir / MAP_FILE).exists():
            return []
        try:
            docs = self.anonymizer().map.subjects()
        except AnonymizationUnavailable as exc:
            raise PrivacyError(str(exc)) from None
        term = search.strip().casefold()
        docs = sorted(
            (d for d in docs if term in d["code"].casefold()),
            key=lambda d: (len(d["code"]), d["code"]),
        )
        if reveal:
            LOG.warning("original identities of %d subject(s) were revealed", len(docs))
        return [_subject(d, reveal) for d in docs]

    def export_anonymization(self, path: str) -> AnonExport:
        target = Path(path).expanduser()
        if not target.is_absolute():
            raise PrivacyError(f"give an absolute path to export to (got {path!r})")
        if target.exists():
            raise PrivacyError(f"{target} already exists; choose a new file name")
        if not target.parent.is_dir():
            raise PrivacyError(f"folder {target.parent} does not exist")
        try:
            count = self.anonymizer().map.export(target)
        except AnonymizationUnavailable as exc:
            raise PrivacyError(str(exc)) from None
        except OSError as exc:
            raise PrivacyError(f"cannot write {target}: {exc.strerror or exc}") from None
        LOG.warning(
            "anonymization map exported to %s (%d subjects, mode 0600)", target, count
        )
        return AnonExport(str(target), count)


def _open_map(path: Path, key: bytes | None, manifest: Manifest) -> AnonymizationMap:
    """The map, whole: its file and every study file it names (MapError otherwise)."""
    amap = AnonymizationMap(path, key, used=manifest.used(MAP_FILE))
    lost = amap.check_study_files()
    if lost:
        amap.close()
        more = f" (and {len(lost) - 1} more)" if len(lost) > 1 else ""
        raise MapError(
            f"{lost[0]}{more}: the originals of its instances are lost; "
            "restore anonymization/ from a backup (see `dicomtui doctor`)"
        )
    manifest.mark(MAP_FILE)
    return amap


def _subject(doc: dict, reveal: bool) -> AnonSubject:
    shown = (lambda key: str(doc.get(key, ""))) if reveal else (lambda key: MASK)
    return AnonSubject(
        code=doc["code"],
        studies=doc.get("studies", 0),
        instances=doc.get("instances", 0),
        first_seen=doc.get("first_seen"),
        last_seen=doc.get("last_seen"),
        patient_name=shown("patient_name"),
        patient_id=shown("patient_id"),
        issuer=shown("issuer"),
        revealed=reveal,
    )
