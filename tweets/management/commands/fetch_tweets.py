from __future__ import annotations

import fcntl
import json
import signal
import time
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from albums.models import Album
from albums.services import albums_for_tags
from tweets.registry import get_source
from tweets.services import (
    DEFAULT_MAX_PAGES,
    AlbumReport,
    RunState,
    active_pause,
    fetch_album,
    finish_round,
    posts_read,
    resume_source,
)
from tweets.sources import AuthFailed


@contextmanager
def single_run_lock(path: Path):
    """An exclusive lock held for the run; yields False when another run holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Command(BaseCommand):
    help = "Search the source for new posts of every due album and store their new photos."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--album", action="append", default=[], metavar="TAG", help="Only this album (repeatable).")
        parser.add_argument("--backfill", action="store_true", help="Walk older pages again from the newest post.")
        parser.add_argument("--max-pages", type=int, default=DEFAULT_MAX_PAGES, help="Page budget per album.")
        parser.add_argument("--dry-run", action="store_true", help="Show what would be fetched; store nothing.")
        parser.add_argument("--json", action="store_true", help="Print the run summary as JSON.")
        parser.add_argument("--loop", action="store_true", help="Run again every minute until stopped (SIGTERM).")
        parser.add_argument(
            "--resume",
            action="store_true",
            help="Lift a pause of the source (X's usage cap after buying credits, a rate limit) first.",
        )
        parser.add_argument(
            "--no-lock",
            action="store_true",
            help="Skip the single-run lock (overlapping runs stay safe: albums are claimed in the database).",
        )

    def handle(self, *args, **options) -> None:
        if options["max_pages"] < 1:
            raise CommandError("--max-pages must be at least 1.")
        self.stopping = False
        if options["loop"]:
            signal.signal(signal.SIGTERM, self._stop)
            signal.signal(signal.SIGINT, self._stop)
            while not self.stopping:
                self._locked_run(options)
                for _ in range(60):
                    if self.stopping:
                        break
                    time.sleep(1)
            return
        self._locked_run(options)

    def _stop(self, signum, frame) -> None:
        self.stderr.write("Stopping after the current item...")
        self.stopping = True

    def _locked_run(self, options) -> None:
        if options["no_lock"]:
            self._run(options)
            return
        with single_run_lock(Path(settings.VAR_DIR) / "fetch_tweets.lock") as acquired:
            if not acquired:
                self.stdout.write("fetch_tweets is already running; nothing to do.")
                return
            self._run(options)

    def _albums(self, tags: list[str]) -> list[Album]:
        if not tags:
            return list(Album.objects.due().order_by("next_fetch_at", "pk"))
        try:
            return albums_for_tags(tags=tags)
        except ValueError as exc:
            raise CommandError(str(exc)) from None

    def _run(self, options) -> None:
        started = timezone.now()
        source = get_source()
        if options["resume"] and resume_source(source=source.name) and options["verbosity"] > 0:
            self.stdout.write(f"The pause of {source.name} is lifted.")
        albums = self._albums(options["album"])
        verbosity = options["verbosity"]
        tty = self.stdout.isatty() and not options["json"] and verbosity > 0
        reports: list[AlbumReport] = []
        failure = None
        stopped = ""  # why albums were left for the next run: one message, not one per album
        waiting = 0
        run = RunState()
        for index, album in enumerate(albums):
            if self.stopping:
                break
            if active_pause(source=source.name) is not None:
                waiting = len(albums) - index
                break
            if run.out_of_time():
                stopped = (
                    f"The run's time budget ({run.budget_seconds:g} s, EVERHASH_FETCH_RUN_BUDGET_SECONDS) is "
                    f"spent: {len(albums) - index} album(s) wait for the next run."
                )
                break
            progress = self._progress_printer(album) if tty else None
            try:
                report = fetch_album(
                    album=album,
                    source=source,
                    max_pages=options["max_pages"],
                    backfill=options["backfill"],
                    dry_run=options["dry_run"],
                    progress=progress,
                    run=run,
                )
            except AuthFailed as exc:
                failure = str(exc)
                reports.append(AlbumReport(hashtag=album.hashtag, status="failed", error=failure))
                break
            reports.append(report)
            if tty:
                self.stdout.write("\r\033[K", ending="")
            if not options["json"] and verbosity > 0:
                self.stdout.write(self._summary_line(report))
        pause = active_pause(source=source.name)
        if pause is not None:
            # X's rate limit or usage cap: every album waits, said once.
            stopped = pause.message + (f" {waiting} album(s) wait." if waiting else "")
        if stopped and not options["json"] and verbosity > 0:
            self.stdout.write(self.style.WARNING(stopped))
        if not options["dry_run"] and failure is None:
            # Milestone emails that failed on an earlier run, and the covers of albums that gained
            # pictures (or were moderated) since their last build.
            collages = finish_round()
            if collages.failed and verbosity > 0 and not options["json"]:
                self.stderr.write(f"{len(collages.failed)} collage(s) failed; they are retried on the next run.")
        if options["json"]:
            summary = {
                "started": started.isoformat(),
                "finished": timezone.now().isoformat(),
                "source": source.name,
                "albums": [report.as_dict() for report in reports],
                "error": failure or "",
                "stopped": stopped,
                # What X bills: posts read per album today and this month, with the estimated cost.
                "cost_per_post": str(settings.EVERHASH_X_COST_PER_POST),
                "posts_read": posts_read(),
            }
            self.stdout.write(json.dumps(summary, indent=2))
        elif not albums and verbosity > 0:
            self.stdout.write("No album is due.")
        if failure:
            raise CommandError(failure)

    def _progress_printer(self, album: Album):
        def show(report: AlbumReport) -> None:
            self.stdout.write(
                f"\r\033[K#{album.hashtag}: {report.posts_seen} posts, {report.added} added, "
                f"{report.duplicates} duplicates, {report.rejected} rejected",
                ending="",
            )
            self.stdout.flush()

        return show

    def _summary_line(self, report: AlbumReport) -> str:
        if report.status == "dry_run":
            return f"#{report.hashtag}: would store {report.new_photos} new photos ({report.requests} requests)"
        line = (
            f"#{report.hashtag}: {report.status}, {report.added} added, {report.duplicates} duplicates, "
            f"{report.rejected} rejected, {report.skipped} skipped, {report.posts_seen} posts, "
            f"{report.requests} requests"
        )
        if report.pending:
            line += f", {report.pending} photos wait for another try"
        if report.retried:
            line += f", {report.retried} stored on another try"
        if report.milestones_sent:
            line += f", {report.milestones_sent} milestone emails"
        if report.error and report.status != "paused":  # a pause is explained once, after the albums
            line += f": {report.error}"
        return self.style.ERROR(line) if report.status == "failed" else line
