from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from albums.services import albums_for_tags
from collages.services import CollageResult, Outcome, build_stale_collages


def pictures(count: int) -> str:
    return f"{count} picture" if count == 1 else f"{count} pictures"


class Command(BaseCommand):
    help = "Build the collages of albums whose pictures changed (or of --album TAG)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--album", action="append", default=[], metavar="TAG", help="This album, stale or not (repeatable)."
        )
        parser.add_argument("--force", action="store_true", help="Rebuild even when the pictures did not change.")

    def handle(self, *args, album: list[str], force: bool, verbosity: int, **options) -> None:
        self.verbosity = verbosity
        try:
            albums = albums_for_tags(tags=album) if album else None
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        summary = build_stale_collages(force=force, albums=albums, report=self._report)
        counts = summary.counts
        if verbosity >= 1:
            if summary.results:
                self.stdout.write(", ".join(f"{counts[outcome]} {outcome}" for outcome in Outcome if counts[outcome]))
            else:
                self.stdout.write("No stale collages.")
        if summary.failed:
            raise CommandError(f"{len(summary.failed)} collage(s) failed; their albums stay stale.")

    def _report(self, result: CollageResult) -> None:
        tag = f"#{result.album.hashtag}"
        collage = result.collage
        if result.outcome == Outcome.FAILED:
            self.stderr.write(f"{tag}: failed: {result.error}")
            return
        if self.verbosity < 1:
            return
        if result.outcome == Outcome.BUILT:
            line = f"{tag}: built from {pictures(collage.picture_count)}"
        elif result.outcome == Outcome.UNCHANGED:
            line = f"{tag}: unchanged ({pictures(collage.picture_count)})"
        elif result.outcome == Outcome.REMOVED:
            line = f"{tag}: no picture to show; collage removed"
        elif result.outcome == Outcome.EMPTY:
            line = f"{tag}: no picture to show; no collage"
        else:
            line = f"{tag}: changed by another run; marked stale for the next one"
        if self.verbosity >= 2 and collage is not None:
            line += f" [{collage.image_key}, {collage.square_key}]"
        self.stdout.write(line)
