"""Which presentation contexts an association may have: the `services`, `sop_classes`
and `transfer_syntaxes` settings, applied to each request as it arrives.

The AE supports everything (scp.py); each association gets pynetdicom's own copy of
those contexts, which `narrow` trims before negotiation. So a change applies to the
next association without a restart, and a peer learns at association time what is
refused (the context's result in the A-ASSOCIATE-AC), not by a failed operation.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from dicomtui.dicom.uid_names import (
    name_of,
    service_set,
    storage_class_uid,
    transfer_syntax_uid,
    uid_set,
)
from dicomtui.settings import Resolved

SERVICE_OF: dict[str, str] = {
    str(Verification): "echo",
    str(PatientRootQueryRetrieveInformationModelFind): "find",
    str(StudyRootQueryRetrieveInformationModelFind): "find",
    str(PatientRootQueryRetrieveInformationModelMove): "move",
    str(StudyRootQueryRetrieveInformationModelMove): "move",
    str(PatientRootQueryRetrieveInformationModelGet): "get",
    str(StudyRootQueryRetrieveInformationModelGet): "get",
}  # every other context we support is a storage one


@dataclass(frozen=True)
class Refused:
    """One requested abstract syntax refused, and the setting that refused it."""

    abstract_syntax: str
    reason: str
    rule: str

    def describe(self) -> str:
        return f"{name_of(self.abstract_syntax)}: {self.reason}"


@dataclass(frozen=True)
class Acceptance:
    """The three settings as UID sets (None: all)."""

    services: frozenset[str]
    sop_classes: frozenset[str] | None
    syntaxes: frozenset[str] | None

    def store_refusal(self, sop_class: str, proposed: list[str]) -> Refused | None:
        """Why C-STORE of `sop_class` in any of `proposed` syntaxes is refused."""
        if "store" not in self.services:
            return Refused(sop_class, "service disabled (services: store)", "services")
        if self.sop_classes is not None and sop_class not in self.sop_classes:
            return Refused(
                sop_class, "SOP class not accepted here (sop_classes)", "sop_classes"
            )
        if self.syntaxes is not None and not set(proposed) & self.syntaxes:
            return Refused(
                sop_class,
                "no proposed transfer syntax accepted here (transfer_syntaxes)",
                "transfer_syntaxes",
            )
        return None


def acceptance_of(s: Resolved) -> Acceptance:
    return _acceptance(s.services, s.sop_classes, s.transfer_syntaxes)


@lru_cache(maxsize=8)
def _acceptance(services: str, sop_classes: str, syntaxes: str) -> Acceptance:
    return Acceptance(
        service_set(services),
        uid_set(sop_classes, storage_class_uid),
        uid_set(syntaxes, transfer_syntax_uid),
    )


def narrow(assoc, rules: Acceptance) -> list[Refused]:
    """Trim the association's supported contexts to what `rules` allow, before
    pynetdicom negotiates; what the requestor asked for and is refused, and why."""
    proposed = _proposed(assoc)
    scp_role = {
        str(uid): bool(item.scp_role)
        for uid, item in assoc.requestor.role_selection.items()
    }
    kept, refused = [], []
    for cx in assoc.acceptor.supported_contexts:
        uid = str(cx.abstract_syntax)
        if uid not in proposed:
            kept.append(cx)
            continue
        refusal = _decide(cx, uid, proposed[uid], scp_role.get(uid, False), rules)
        if refusal is not None:
            refused.append(refusal)
        if refusal is None or (refusal.rule == "transfer_syntaxes" and cx.transfer_syntax):
            kept.append(cx)  # only other syntaxes: the peer hears exactly that (0x04)
    assoc.acceptor.supported_contexts = kept
    return refused


def _decide(cx, uid: str, proposed: list[str], wants_scp: bool, rules: Acceptance):
    """None: keep `cx` (narrowed to the syntaxes allowed); else why it is refused."""
    service = SERVICE_OF.get(uid)
    if service is not None:
        if service in rules.services:
            return None
        return Refused(uid, f"service disabled (services: {service})", "services")
    if wants_scp and "get" in rules.services:
        # A C-GET requester taking what we hold: a storage context of get's. Unless it
        # may store too, it may not be our storage SCU (Receiver.store checks anyway).
        if rules.store_refusal(uid, proposed) is not None:
            cx.scu_role = False
        return None
    if rules.syntaxes is not None:
        cx.transfer_syntax = [ts for ts in cx.transfer_syntax if ts in rules.syntaxes]
    return rules.store_refusal(uid, proposed)


def _proposed(assoc) -> dict[str, list[str]]:
    """Abstract syntax -> the transfer syntaxes proposed for it, in the request."""
    found: dict[str, list[str]] = {}
    for cx in assoc.requestor.primitive.presentation_context_definition_list:
        found.setdefault(str(cx.abstract_syntax), []).extend(
            str(ts) for ts in cx.transfer_syntax
        )
    return found
