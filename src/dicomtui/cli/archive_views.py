"""Plain-text views of the archive for the CLI: studies, destinations, storage, cleanup."""

from __future__ import annotations

import sys

from dicomtui.models import (
    CleanupPlan,
    Destination,
    Job,
    StorageReport,
    StudyPage,
    UsageRow,
)
from dicomtui.wording import size


def studies(page: StudyPage) -> str:
    if not page.studies:
        return "no studies match (`dicomtui reindex` rebuilds the index from storage)"
    lines = [f"{'state':<10} {'date':<8} {'patient':<24} {'id':<12} {'accession':<12} "
             f"{'mod':<8} {'facility':<14} {'inst':>5} {'size':>9}  study UID"]
    for s in page.studies:
        lines.append(f"{s.state:<10} {s.study_date or '-':<8} {s.patient_name[:24]:<24} "
                     f"{s.patient_id[:12]:<12} {s.accession[:12]:<12} "
                     f"{','.join(s.modalities)[:8]:<8} {s.facility[:14]:<14} "
                     f"{s.instances:>5} {size(s.bytes):>9}  {s.uid}")
    if page.total > len(page.studies):
        lines.append(f"... {len(page.studies)} of {page.total} shown (use --limit)")
    return "\n".join(lines)


def destinations(items: list[Destination]) -> str:
    if not items:
        return "no C-MOVE destinations (add one: dicomtui dest add AE HOST PORT)"
    lines = [f"{'AE title':<16}  {'host':<24}  {'port':>5}  description"]
    lines += [f"{d.ae_title:<16}  {d.host:<24}  {d.port:>5}  {d.description}"
              for d in items]
    return "\n".join(lines)


def storage(report: StorageReport) -> str:
    quota = (f"{size(report.used_bytes)} of {size(report.quota_bytes)} quota "
             f"({report.used_bytes * 100 // max(report.quota_bytes, 1)}%)"
             if report.quota_bytes else f"{size(report.used_bytes)} (no quota: "
             "max_storage_gb = 0)")
    lines = [f"Storage:   {report.root}",
             f"Used:      {quota}",
             f"Disk:      {size(report.disk_free)} free of {size(report.disk_total)}",
             f"Indexed:   {report.studies} studies, {report.instances} instances, "
             f"{size(report.indexed_bytes)}",
             f"Cleanup:   auto_cleanup {'on' if report.auto_cleanup else 'off'}, "
             f"retention_days {report.retention_days}"]
    for title, rows in (("facility", report.by_facility), ("modality", report.by_modality),
                        ("day received", report.by_day)):
        lines += ["", f"By {title}:"] + _usage(rows)
    return "\n".join(lines)


def _usage(rows: list[UsageRow]) -> list[str]:
    if not rows:
        return ["  (nothing indexed)"]
    return [f"  {r.key[:24]:<24} {r.studies:>6} studies {r.instances:>8} instances "
            f"{size(r.bytes):>10}" for r in rows]


def cleanup_plan(plan: CleanupPlan, dry_run: bool) -> str:
    verb = "would remove" if dry_run else "removes"
    lines = [f"Cleanup of studies received more than {plan.older_than_days:g} days ago: "
             f"{verb} {len(plan.remove)} studies ({size(plan.bytes)}), keeps "
             f"{len(plan.keep)}"]
    for c in plan.remove[:200]:
        lines.append(f"  remove  {c.last_received[:10]}  {c.facility[:14]:<14} "
                     f"{c.instances:>5} inst {size(c.bytes):>9}  {c.uid}")
    if len(plan.remove) > 200:
        lines.append(f"  ... and {len(plan.remove) - 200} more")
    for c in plan.keep:
        lines.append(f"  keep    {c.last_received[:10]}  {c.uid}: {c.kept_because}")
    return "\n".join(lines)


def job_progress(job: Job, tty: bool) -> None:
    """One progress line on stderr: a bar on a terminal, plain lines otherwise."""
    if tty:
        width = 30
        filled = width * job.done // job.total if job.total else 0
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {job.done}/"
                         f"{job.total} {job.message[:40]:<40}")
        sys.stderr.flush()
    else:
        print(f"{job.kind}: {job.done}/{job.total} {job.message}", file=sys.stderr)
