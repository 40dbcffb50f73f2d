"""How access reads on screen 5: the policy line, callers, refusals, and the questions
asked before a change that could lock senders out."""

from __future__ import annotations

import ipaddress
from datetime import date

from rich.text import Text

from dicomtui.models import AllowedCaller
from dicomtui.tui import format as fmt
from dicomtui.wording import in_words

CALLER_COLUMNS = ("AE title", "state", "from", "description")
# who and why first; what they called and the rule that refused follow as width allows
REFUSED_COLUMNS = ("time", "calling AE", "peer", "reason", "called AE", "rule")
REASON_SHOWN = 80  # Enter shows the record whole
POLICY = ("require_calling_ae", "check_called_ae", "allowed_ips", "auto_create_facilities")


def policy_line(values: dict) -> Text:
    """Two lines: the switches, then allowed_ips and what the switches add up to."""
    if not values:
        return Text(" reading the access policy…", style="dim")
    require = bool(values["require_calling_ae"].value)
    text = Text(" require_calling_ae ")
    text.append_text(fmt.on_off(require))
    text.append(" (p)", style="dim")
    for name in ("check_called_ae", "auto_create_facilities"):
        text.append(f"   {name} ")
        text.append_text(fmt.on_off(values[name].value))
    text.append("\n allowed_ips ")
    ips = str(values["allowed_ips"].value or "")
    text.append(ips or "any", style="bold" if ips else "")
    text.append(" (i)   ", style="dim")
    text.append("only allowed callers may associate" if require else
                "any calling AE may associate, except denied ones", style="dim")
    return text


def caller_row(caller: AllowedCaller) -> tuple:
    state = (Text("allowed", style="green") if caller.active  # same width: see
             else Text("denied ", style="bold red"))  # facility_rows.STATE_WIDTH
    where = Text(address(caller.ip)) if caller.ip else Text("any", style="dim")
    return (caller.ae_title, state, where, caller.description)


def refused_row(record: dict, today: date, allowed_now: bool = False) -> tuple:
    """One refusal; one whose caller would be let in now starts its reason with
    "now allowed" (the fix was made: no need to look twice at 3 a.m.)."""
    reason = Text("now allowed  ", style="bold green") if allowed_now else Text()
    reason.append(short_reason(record.get("reason"))[:REASON_SHOWN],
                  style="dim" if allowed_now else "red")
    return (fmt.when(record.get("time"), today), record.get("calling_ae") or "",
            record.get("peer") or "", reason,
            record.get("called_ae") or "", record.get("rule") or "")


# the refusals an allowed caller lifts (the others: allowed_ips, check_called_ae, ...)
CALLER_RULES = ("require_calling_ae", "denied", "caller_ip")


def now_allowed(record: dict, callers: list[AllowedCaller], require: bool) -> bool:
    """Whether the caller a refusal turned away would now get past the rule that
    refused it: allowed (from its address), or require_calling_ae since turned off."""
    if record.get("rule") not in CALLER_RULES:
        return False
    caller = next((c for c in callers if c.ae_title == record.get("calling_ae")), None)
    if caller is None:
        return record.get("rule") == "require_calling_ae" and not require
    return caller.active and _within(peer_ip(record.get("peer") or ""), caller.ip)


def _within(ip: str, network: str | None) -> bool:
    if not network:
        return True
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(network, strict=False)
    except ValueError:
        return False


def address(ip: str) -> str:
    """'10.1.2.3/32' -> '10.1.2.3': one host reads as an address, not a network."""
    return ip.removesuffix("/32").removesuffix("/128")


def peer_ip(peer: str) -> str:
    """'10.1.2.3:40112' -> '10.1.2.3' (and '[::1]:5000' or '::1:5000' -> '::1')."""
    if peer.startswith("["):
        return peer[1:peer.find("]")]
    return peer.rpartition(":")[0] if ":" in peer else peer


def short_reason(reason: str | None) -> str:
    """The refusal in words without the 'rejected:' lead and the PS3.8 wording after it
    (Enter shows all); a reason that is only that wording keeps it."""
    text = in_words(reason).removeprefix("rejected: ")
    cut = text.find(" (Rejected ")
    return text[:cut] if cut > 0 else text.strip("()")


def require_question(turn_on: bool, callers: list[AllowedCaller]) -> tuple[str, str]:
    """The question and detail before switching require_calling_ae."""
    if not turn_on:
        return ("Turn require_calling_ae off?",
                "Any calling AE title may associate again, except denied ones "
                "(allowed_ips still applies).")
    active = [c.ae_title for c in callers if c.active]
    if not active:
        return ("Turn require_calling_ae on?",
                "There is no allowed caller: every association would be refused until "
                "one is added (a).")
    names = ", ".join(active[:6]) + (", …" if len(active) > 6 else "")
    return ("Turn require_calling_ae on?",
            f"Only the {len(active)} allowed caller(s) may associate ({names}); every "
            "other calling AE title is refused.")


def removal_detail(caller: AllowedCaller, require: bool) -> str:
    """What removing a caller changes, given the policy now."""
    if require:
        return (f"require_calling_ae is on: associations from {caller.ae_title} are "
                "refused from now on.")
    if caller.active:
        return (f"require_calling_ae is off: {caller.ae_title} may still associate, as "
                "any calling AE may. To refuse it always, deny it (space) instead.")
    return (f"require_calling_ae is off: {caller.ae_title} is denied now, and may "
            "associate again once removed.")
