"""Plain-text renderings of Backend shapes for the CLI (sizes and durations humanized)."""

from __future__ import annotations

import sys
from pathlib import Path

from dicomtui.cli.background import log_path
from dicomtui.models import (
    AllowedCaller,
    AnonSubject,
    Facility,
    PacsConfig,
    SettingValue,
    StatusSnapshot,
    UploadItem,
)
from dicomtui.wording import clock, duration, in_words, setting_value, size


def status(snap: StatusSnapshot) -> str:
    """The `dicomtui status` screen."""
    up = f", up {duration(snap.uptime_s)}" if snap.started_at else ""
    lines = [f"dicomtui {snap.mode}: {snap.state.upper()} (pid {snap.pid}{up})",
             f"  data dir   {snap.data_dir}", f"  storage    {snap.storage_dir}"]
    if snap.started_by == "console":
        lines.append(f"  started by a console; its log: {log_path(Path(snap.data_dir))}")
    if snap.error:
        lines.append(f"  error      {snap.error}")
    lines += [f"  warning    {w}" for w in snap.warnings]
    for lst in snap.listeners:
        owner = "" if lst.name == "main" else f"  (facility {lst.name})"
        owner += "  (DICOM TLS)" if lst.tls else ""
        error = f": {lst.error}" if lst.error else ""
        lines.append(f"  listener   {lst.ae_title} @ {lst.host}:{lst.port}  {lst.state}"
                     f"{error}{owner}")
    lines.append(_storage_line(snap))
    lines.append(_counters_line("since start", snap.counters))
    lines.append(_counters_line("today", snap.today))
    u = snap.uploads
    lines.append(f"  uploads: {u.queued} queued, {u.uploading} uploading, {u.failed} "
                 f"failed, {u.done} done")
    lines.append(f"  associations: {len(snap.associations)} active")
    for a in snap.associations:
        lines.append(f"    #{a.id} {a.calling_ae} ({a.peer}) -> {a.called_ae} since "
                     f"{clock(a.started)}: {a.instances} instances, {size(a.bytes)}")
    if snap.last_errors:
        lines.append("  last errors:")
        lines += [f"    {clock(e.time)} {in_words(e.message)}" for e in snap.last_errors[:5]]
    return "\n".join(lines)


def _storage_line(snap: StatusSnapshot) -> str:
    if not snap.quota_bytes:
        return f"  storage    {size(snap.storage_used_bytes)} used (no quota)"
    pct = 100 * snap.storage_used_bytes / snap.quota_bytes
    return (f"  storage    {size(snap.storage_used_bytes)} used of {size(snap.quota_bytes)} "
            f"quota ({pct:.0f}%)")


def _counters_line(label: str, c) -> str:
    return (f"  {label + ':':<12} received {c.received:,} ({size(c.bytes)}), failed "
            f"{c.failed:,}, refused {c.refused:,}, echoes {c.echoes:,}, "
            f"associations {c.associations:,}")


def record_line(r: dict) -> str:
    """One transaction record on one line."""
    status = "" if r.get("status") is None else f"0x{r['status']:04X}"
    parts = [clock(r.get("time", "")), f"{r.get('type', ''):<11}",
             f"{r.get('outcome', ''):<7}", f"{status:<6}",
             f"{r.get('calling_ae', '')}->{r.get('called_ae', '')}", r.get("peer", "")]
    if r.get("type") == "store":
        parts += [r.get("modality") or "-", r.get("sop_uid") or "-",
                  size(r.get("bytes") or 0), f"{r.get('duration_ms', 0):.0f}ms"]
    elif r.get("type") == "association" and "instances" in r:
        parts += [f"{r['instances']} instances", size(r.get("bytes") or 0)]
    elif r.get("type") == "find":
        parts += [f"{r.get('level') or '?'} [{r.get('keys') or '-'}]",
                  f"{r.get('matches', 0)} matches"]
    elif r.get("type") in ("move", "get"):
        parts += [f"to {r['destination']}" if r.get("destination") else "",
                  f"{r.get('completed', 0)}/{r.get('total', 0)} sent, "
                  f"{r.get('warning', 0)} warnings, {r.get('failed', 0)} failed"]
    elif r.get("type") == "cleanup":
        parts += [r.get("study_uid", ""), f"{r.get('instances', 0)} files",
                  size(r.get("bytes") or 0)]
    if r.get("reason"):
        parts.append(in_words(r["reason"]))
    return "  ".join(str(p) for p in parts)


def settings(values: list[SettingValue]) -> str:
    """The `dicomtui config` table: name, value, source, and what is pending a restart."""
    width = max(len(v.name) for v in values)
    lines = [f"{'setting':<{width}}  {'value':<24} source"]
    for v in values:
        flag = "  (restart to apply)" if v.pending_restart else ""
        shown = setting_value(v.value)
        lines.append(f"{v.name:<{width}}  {shown:<24} {v.source}{flag}")
    return "\n".join(lines)


def setting_changed(v: SettingValue) -> str:
    """What `config set|unset` did to one setting: its value now, where that comes from
    and when it applies (the whole table is `dicomtui config`)."""
    shown = "(none)" if v.value in (None, "") else str(v.value)
    if v.source == "environment":
        when = f"DICOMTUI_{v.name.upper()} overrides the stored value while it is set"
    elif v.source == "command line":
        when = "the service's command line overrides the stored value"
    elif v.pending_restart:
        when = "applies when the receiver restarts (r in the console)"
    elif v.restart_required:
        when = "applies when the receiver (re)starts"
    else:
        when = "applies at once"
    return f"{v.name} = {shown}  ({v.source}; {when})"


def send_progress(summary) -> None:
    done = summary.sent + summary.failed
    if done % 25 == 0:
        print(f"\r  sent {summary.sent}, failed {summary.failed}", end="", file=sys.stderr)


def send_failure(item, reason: str) -> None:
    """One line per file that failed, as it happens (the summary counts them)."""
    what = str(item.path) if item.path is not None else "a generated instance"
    over_progress = "\r" if sys.stderr.isatty() else ""
    print(f"{over_progress}failed: {what}: {reason}", file=sys.stderr)


def send_summary(summary) -> str:
    converted = f", {summary.converted} converted" if summary.converted else ""
    lines = [f"sent {summary.sent} ({size(summary.bytes)}{converted}), "
             f"failed {summary.failed}, skipped {summary.skipped} non-DICOM file(s)"]
    for status, count in sorted(summary.statuses.items()):
        label = "no response" if status < 0 else f"0x{status:04X}"
        reason = summary.reasons.get(status, "")
        lines.append(f"  {label}: {count}" + (f"  ({reason})" if reason else ""))
    for reason, count in sorted(summary.unsendable.items()):
        lines.append(f"  not sent: {count}  ({reason})")
    return "\n".join(lines)


def facilities(items: list[Facility]) -> str:
    """The `dicomtui facility list` table."""
    if not items:
        return "no facilities yet; add one with `dicomtui facility add NAME`"
    width = max(8, *(len(f.name) for f in items))
    lines = [f"{'facility':<{width}}  {'AE title':<16}  {'port':>5}  {'listener':<9}  "
             f"{'today':>6}  {'studies':>7}  last seen  calling AEs"]
    for f in items:
        state = f.listener + (" (auto)" if f.auto_created else "")
        lines.append(f"{f.name:<{width}}  {f.ae_title:<16}  {f.port:>5}  {state:<9}  "
                     f"{f.instances_today:>6}  {f.studies_today:>7}  "
                     f"{clock(f.last_seen) or '-':<9}  {', '.join(f.calling_aes) or '-'}")
        if f.anonymize != "default":
            lines.append(f"{'':<{width}}  anonymize: {f.anonymize}")
        if f.error:
            lines.append(f"{'':<{width}}  listener error: {f.error}")
    return "\n".join(lines)


def anon_subjects(items: list[AnonSubject]) -> str:
    """The `dicomtui anon list` table."""
    if not items:
        return "no subjects: nothing has been anonymized yet"
    lines = [f"{'code':<9}  {'studies':>7}  {'instances':>9}  {'first seen':<16}  "
             f"{'last seen':<16}  patient name / ID / issuer"]
    for s in items:
        lines.append(f"{s.code:<9}  {s.studies:>7}  {s.instances:>9}  "
                     f"{_stamp(s.first_seen):<16}  {_stamp(s.last_seen):<16}  "
                     f"{s.patient_name} / {s.patient_id} / {s.issuer or '-'}")
    if not items[0].revealed:
        lines.append("(identities masked; --reveal shows them, and is logged)")
    return "\n".join(lines)


def uploads(items: list[UploadItem]) -> str:
    """The `dicomtui uploads` table, newest first."""
    if not items:
        return ("no uploads yet (zip_studies and auto_upload queue completed studies; "
                "`dicomtui upload PATH` queues one by hand)")
    lines = [f"{'id':>4}  {'state':<9}  {'size':>9}  {'tries':>5}  {'next try':<8}  "
             "zip / last error"]
    for i in items:
        progress = (f" {i.bytes_sent * 100 // max(i.size, 1)}%"
                    if i.state == "uploading" else "")
        lines.append(f"{i.id:>4}  {i.state + progress:<9}  {size(i.size):>9}  "
                     f"{i.attempts:>5}  {clock(i.next_attempt, False) or '-':<8}  "
                     f"{Path(i.path).name}" + (f" (v{i.version})" if i.version > 1 else ""))
        if i.last_error:
            lines.append(f"{'':>4}  {i.last_error}")
    return "\n".join(lines)


def _stamp(iso: str | None) -> str:
    return iso[:16].replace("T", " ") if iso else "-"


def pacs_config(config: PacsConfig, only: str | None = None) -> str:
    """What a remote PACS enters to send here, one block per listener."""
    lines = ["Configuration for remote PACS", "=" * 29, "",
             f"Host name:  {config.hostname}",
             f"Address:    {', '.join(config.addresses)}", ""]
    for lst in config.listeners:
        if only is not None and lst.name.casefold() != only.casefold():
            continue
        title = "Main receiver" if lst.name == "main" else f"Facility: {lst.name}"
        title += " (DICOM TLS: the peer needs our CA certificate)" if lst.tls else ""
        lines += [title, f"  AE Title: {lst.ae_title}", f"  Port:     {lst.port}",
                  f"  Host:     {config.addresses[0] if config.addresses else config.hostname}"]
        if lst.state != "listening":
            lines.append(f"  (listener {lst.state}{': ' + lst.error if lst.error else ''})")
        lines.append("")
    return "\n".join(lines).rstrip()


def callers(items: list[AllowedCaller], require: bool) -> str:
    """The `dicomtui ae list` table, with what the policy makes of the list."""
    policy = ("require_calling_ae is on: only the allowed callers below may associate"
              if require else "require_calling_ae is off: any calling AE may associate, "
              "except denied ones")
    if not items:
        return f"no allowed callers yet; add one with `dicomtui ae allow AE`\n({policy})"
    lines = [f"{'AE title':<16}  {'state':<7}  {'from':<18}  description"]
    for c in items:
        lines.append(f"{c.ae_title:<16}  {'allowed' if c.active else 'denied':<7}  "
                     f"{c.ip or 'any address':<18}  {c.description}")
    return "\n".join(lines + ["", f"({policy})"])
