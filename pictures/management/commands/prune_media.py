from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from pictures.storage import MIN_GRACE, StorageUnavailable, prune


class Command(BaseCommand):
    help = "Remove stored media (originals, renditions, collages) that no row refers to any more."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--grace-hours",
            type=float,
            default=24,
            help="Keep unreferenced files younger than this: a fetch writes its files before its row (default 24).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Say what would be removed; remove nothing.")

    def handle(self, *args, grace_hours: float, dry_run: bool, verbosity: int, **options) -> None:
        grace = timedelta(hours=grace_hours)
        if grace < MIN_GRACE:
            raise CommandError(f"--grace-hours must be at least {MIN_GRACE.total_seconds() / 3600:g}.")
        try:
            report = prune(grace=grace, dry_run=dry_run)
        except StorageUnavailable as exc:
            raise CommandError(f"{exc}. Nothing more was removed; run again once the storage is back.") from None
        if verbosity >= 2:
            for key in report.removed_keys:
                self.stdout.write(f"{'would remove' if dry_run else 'removed'} {key}")
        if verbosity >= 1:
            verb = "Would remove" if dry_run else "Removed"
            self.stdout.write(
                f"{verb} {report.removed} unreferenced files ({report.removed_bytes / 1e6:.1f} MB, "
                f"{report.removed_bytes} bytes); kept {report.referenced} in use and {report.young} younger than "
                f"{grace_hours:g} hours; {report.scanned} scanned."
            )
