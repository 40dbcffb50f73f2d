"""Allow a calling AE title: new, edited, or taken from a refused association."""

from __future__ import annotations

from dicomtui.models import AllowedCaller
from dicomtui.tui import format as fmt
from dicomtui.tui.forms import Call, Field, FormDialog
from dicomtui.tui.screens.access_rows import address, peer_ip

IP_HINT = "blank: any address; or 10.1.2.3, 10.1.2.0/24"
# Rules that allowing the caller does not lift: said before saving, not after.
NOT_LIFTED = {"allowed_ips": "its address is not in allowed_ips (i edits it)",
              "check_called_ae": "the AE title it called is neither ours nor a "
                                 "facility's (check_called_ae)",
              "max_associations": "too many associations were open at once"}


class CallerForm(FormDialog):
    """A new or refused caller is saved with allow_caller; an edit with update_caller,
    which keeps a denied caller denied (space is what allows or denies)."""

    def __init__(self, title: str, detail: str, fields: list[Field],
                 ae_title: str | None = None) -> None:
        super().__init__(title, detail, fields)
        self.ae_title = ae_title  # None: typed in the form

    @classmethod
    def new(cls) -> CallerForm:
        return cls("Allow a calling AE title",
                   "It may associate (from this address only, if given) even when "
                   "require_calling_ae is on.",
                   [Field("ae_title", "AE title", placeholder="e.g. CT_SCANNER1"),
                    Field("ip", "From", placeholder=IP_HINT),
                    Field("description", "Description", placeholder="optional")])

    @classmethod
    def edit(cls, caller: AllowedCaller) -> CallerForm:
        detail = ("Where it may call from, and what it is." if caller.active else
                  f"{caller.ae_title} is denied and stays denied (space allows it).")
        return cls(f"Edit allowed caller {caller.ae_title}", detail,
                   [Field("ip", "From", address(caller.ip), IP_HINT),
                    Field("description", "Description", caller.description, "optional")],
                   ae_title=caller.ae_title)

    @classmethod
    def from_refused(cls, record: dict) -> CallerForm:
        when = fmt.clock(record.get("time"))
        rule = record.get("rule") or ""
        detail = (f"{record.get('calling_ae') or '(empty)'} was refused at {when}"
                  + (f" by {rule}" if rule else "") + ". Saving allows it.")
        if rule in NOT_LIFTED:
            detail += f" It would still be refused: {NOT_LIFTED[rule]}."
        return cls("Allow a refused caller", detail,
                   [Field("ae_title", "AE title", record.get("calling_ae") or ""),
                    Field("ip", "From", peer_ip(record.get("peer") or ""), IP_HINT),
                    Field("description", "Description",
                          f"allowed from refused association {when}")])

    def request(self, values: dict[str, str]) -> Call:
        ip, description = values["ip"].strip(), values["description"].strip()
        if self.ae_title is not None:
            ae_title = self.ae_title
            return lambda backend: backend.update_caller(ae_title, ip=ip,
                                                         description=description)
        ae_title = values["ae_title"]
        return lambda backend: backend.allow_caller(ae_title, ip=ip, description=description)

    def said(self, result: AllowedCaller) -> str:
        where = address(result.ip) if result.ip else "any address"
        if not result.active:
            return f"{result.ae_title} (denied) saved: from {where}"
        return f"{result.ae_title} allowed from {where}"
