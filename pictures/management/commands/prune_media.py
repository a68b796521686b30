from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from pictures.services import verify_media
from pictures.storage import MIN_GRACE, StorageUnavailable, prune


class Command(BaseCommand):
    help = "Remove stored media no row refers to; with --verify, first repair rows whose files are missing or damaged."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--grace-hours",
            type=float,
            default=24,
            help="Keep unreferenced files younger than this: a fetch writes its files before its row (default 24).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Say what would be removed; remove nothing.")
        parser.add_argument(
            "--verify",
            action="store_true",
            help="Also read every picture's files: rebuild damaged renditions from the original; "
            "remove a picture whose original is lost so the next fetch stores it again.",
        )

    def handle(self, *args, grace_hours: float, dry_run: bool, verify: bool, verbosity: int, **options) -> None:
        grace = timedelta(hours=grace_hours)
        if grace < MIN_GRACE:
            raise CommandError(f"--grace-hours must be at least {MIN_GRACE.total_seconds() / 3600:g}.")
        if verify:
            self._verify(dry_run=dry_run, verbosity=verbosity)
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

    def _verify(self, *, dry_run: bool, verbosity: int) -> None:
        try:
            report = verify_media(repair=not dry_run)
        except StorageUnavailable as exc:
            raise CommandError(f"{exc}. Nothing was judged damaged; run again once the storage is back.") from None
        if verbosity >= 2:
            for content_hash in report.renditions_rebuilt:
                self.stdout.write(f"{'would rebuild' if dry_run else 'rebuilt'} the renditions of {content_hash}")
            for permalink in report.refetch:
                self.stdout.write(f"original lost, {'would fetch' if dry_run else 'to be fetched'} again: {permalink}")
        if verbosity >= 1:
            rebuilt, lost = len(report.renditions_rebuilt), len(report.refetch)
            if dry_run:
                outcome = f"{rebuilt} with damaged renditions would be rebuilt, {lost} with a lost original removed"
            else:
                outcome = f"{rebuilt} with damaged renditions rebuilt, {lost} with a lost original removed"
            self.stdout.write(
                f"Verified {report.checked} pictures: {outcome}"
                + (" (the next fetch_tweets stores them again)." if lost and not dry_run else ".")
            )
