"""fetch_tweets: every source of every due album (or of the named ones), once or in a loop.

Exit codes (docs/operations.md): 0 every album fetched, or nothing to do (an album whose other
sources worked while one failed counts as fetched: that source's failure is on stderr); 1 an
album failed (its cause on stderr, in plain words) or the database failed; 2 a wrong command
line; 3 a source refused its credentials (that source was asked no more in the run; the others
went on); 75 a named album (`--album`) is being fetched by another run.
`--loop` exits 0 once stopped: its runs' failures were reported as they happened.
SIGTERM or SIGINT stop the run at a safe point between pictures (a download in flight is
abandoned), within seconds; the next run continues where it stopped. A second signal exits at once.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import sys
import time
from contextlib import contextmanager, suppress
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from django.utils import timezone

from albums.models import Album
from albums.services import albums_for_tags
from tweets.registry import run_sources
from tweets.services import (
    CLAIM_LEASE,
    DEFAULT_MAX_PAGES,
    AlbumReport,
    RunState,
    SourceReport,
    Stopped,
    StopRequest,
    active_pauses,
    close_interrupted_runs,
    failure_message,
    fetch_album,
    finish_round,
    holder_id,
    posts_read,
    resume_source,
)

logger = logging.getLogger("everhash.fetch")

EXIT_OK = 0
EXIT_FAILED = 1  # an album failed, or the database did
EXIT_USAGE = 2
EXIT_AUTH = 3  # the source refused the token
EXIT_BUSY = 75  # EX_TEMPFAIL: a named album is being fetched by another run; try again later


class RunLock:
    """The single-run lock of one machine: a file lock that dies with its holder.

    The kernel releases it when the holding process exits, however it exits. The holder touches
    the file as it makes progress; a lock whose holder made none for CLAIM_LEASE (a hung run) no
    longer stops the next run, which goes ahead: albums are claimed one by one in the database,
    and the hung run's claims have expired by then.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def hold(self):
        """Yields "held", "stale" (held by a run with no progress for CLAIM_LEASE) or "busy"."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                idle = time.time() - os.fstat(handle.fileno()).st_mtime
                yield "stale" if idle > CLAIM_LEASE.total_seconds() else "busy"
                return
            try:
                handle.seek(0)
                handle.truncate()
                handle.write(f"{holder_id()} since {timezone.now():%Y-%m-%d %H:%M:%S} UTC\n")
                handle.flush()
                yield "held"
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def holder(self) -> str:
        try:
            return self.path.read_text().strip() or "unknown"
        except OSError:
            return "unknown"

    def touch(self) -> None:
        """A sign of progress: the lock is not stale."""
        with suppress(OSError):
            os.utime(self.path)


class Command(BaseCommand):
    help = "Search every source of each due album for new posts and store their new photos."

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
            help="Lift the sources' pauses (X's usage cap after buying credits, a rate limit) first.",
        )
        parser.add_argument(
            "--no-lock",
            action="store_true",
            help="Skip the single-run lock (overlapping runs stay safe: albums are claimed in the database).",
        )

    def run_from_argv(self, argv) -> None:
        """From the command line (cron), the outcome is also the exit code; call_command only prints it."""
        self.exit_code = EXIT_OK
        super().run_from_argv(argv)
        sys.exit(self.exit_code)

    def handle(self, *args, **options) -> None:
        if options["max_pages"] < 1:
            raise CommandError("--max-pages must be at least 1.", returncode=EXIT_USAGE)
        self.exit_code = EXIT_OK
        self.stop = StopRequest()
        self.lock = RunLock(Path(settings.VAR_DIR) / "fetch_tweets.lock")
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self._locked_run(options)
            while options["loop"] and not self.stop.requested:
                for _ in range(60):
                    if self.stop.requested:
                        break
                    time.sleep(1)
                else:
                    self._locked_run(options)
            if options["loop"]:
                self.exit_code = EXIT_OK  # stopped on request; failures were reported as they happened
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum, frame) -> None:
        if self.stop.requested:
            raise KeyboardInterrupt  # a second signal: stop now
        self.stderr.write("Stopping at the next safe point (between pictures)...")
        self.stop.request()  # raises Stopped inside a download or a search

    def _locked_run(self, options) -> None:
        if options["no_lock"]:
            self._safe_run(options)
            return
        with self.lock.hold() as state:
            if state == "busy":
                self.stdout.write(f"fetch_tweets is already running ({self.lock.holder()}); nothing to do.")
                return
            if state == "stale":
                self.stderr.write(
                    f"The run holding the lock ({self.lock.holder()}) has made no progress for "
                    f"{CLAIM_LEASE.total_seconds() / 60:g} minutes; going ahead (albums are claimed one by one)."
                )
            self._safe_run(options)

    def _safe_run(self, options) -> None:
        try:
            self._run(options)
        except DatabaseError as exc:
            # A locked or unreachable database stops the run: every album would fail the same way.
            self.stderr.write(self.style.ERROR(f"fetch_tweets stopped: {failure_message(exc)}"))
            self.exit_code = EXIT_FAILED

    def _albums(self, tags: list[str]) -> list[Album]:
        if not tags:
            return list(Album.objects.due().order_by("next_fetch_at", "pk"))
        try:
            return albums_for_tags(tags=tags)
        except ValueError as exc:
            raise CommandError(str(exc), returncode=EXIT_USAGE) from None

    def _run(self, options) -> None:
        started = timezone.now()
        sources = run_sources()
        for source in sources if options["resume"] else ():
            if resume_source(source=source.key) and options["verbosity"] > 0:
                self.stdout.write(f"The pause of {source.label} is lifted.")
        if not options["dry_run"]:
            close_interrupted_runs(now=started)  # killed or hung runs: closed, their albums due again
        albums = self._albums(options["album"])
        verbosity = options["verbosity"]
        tty = self.stdout.isatty() and not options["json"] and verbosity > 0
        reports: list[AlbumReport] = []
        refused: dict[str, str] = {}  # sources whose credentials were refused: asked once per run
        database_failed = False
        stopped = ""  # why albums were left for the next run: one message, not one per album
        waiting = 0
        run_state = RunState()
        keys = [source.key for source in sources]
        for index, album in enumerate(albums):
            if self.stop.requested:
                break
            if sources and len(active_pauses(sources=keys)) == len(keys):
                waiting = len(albums) - index
                break
            if run_state.out_of_time():
                stopped = (
                    f"The run's time budget ({run_state.budget_seconds:g} s, EVERHASH_FETCH_RUN_BUDGET_SECONDS) is "
                    f"spent: {len(albums) - index} album(s) wait for the next run."
                )
                break
            self.lock.touch()
            try:
                report = fetch_album(
                    album=album,
                    sources=sources,
                    max_pages=options["max_pages"],
                    backfill=options["backfill"],
                    dry_run=options["dry_run"],
                    forced=bool(options["album"]),
                    progress=self._progress_printer(album, tty=tty),
                    run_state=run_state,
                    stop=self.stop,
                    refused=refused,
                )
            except DatabaseError as exc:
                # A locked or unreachable database: every other album would fail the same way.
                reports.append(AlbumReport(hashtag=album.hashtag, status="failed", error=failure_message(exc)))
                database_failed = True
                break
            reports.append(report)
            if tty:
                self.stdout.write("\r\033[K", ending="")
            if not options["json"] and verbosity > 0:
                self.stdout.write(self._summary_line(report))
            if report.status == "stopped":
                break
        pauses = list(active_pauses(sources=keys).values())
        if pauses:
            # A source's rate limit or usage cap: every album waits for it, said once.
            stopped = " ".join(pause.message for pause in pauses) + (f" {waiting} album(s) wait." if waiting else "")
        if stopped and not options["json"] and verbosity > 0:
            self.stdout.write(self.style.WARNING(stopped))
        failure = " ".join(dict.fromkeys(refused.values()))
        if not options["dry_run"] and not database_failed and not self.stop.requested:
            # Milestone emails that failed on an earlier run, and the covers of albums that gained
            # pictures (or were moderated) since their last build.
            try:
                collages = finish_round(stop=self.stop)
            except Stopped:
                pass  # the collages not built yet stay stale for the next run
            else:
                if collages.failed and verbosity > 0 and not options["json"]:
                    self.stderr.write(f"{len(collages.failed)} collage(s) failed; they are retried on the next run.")
        self._report(reports, started=started, sources=sources, options=options, failure=failure, stopped=stopped)
        if not albums and verbosity > 0 and not options["json"]:
            self.stdout.write("No album is due.")
        if failure:
            raise CommandError(failure, returncode=EXIT_AUTH)

    def _report(self, reports: list[AlbumReport], *, started, sources, options, failure: str, stopped: str) -> None:
        """The run's summary (--json) and its exit code; failed albums and sources named on stderr for cron."""
        failed = [report for report in reports if report.status == "failed"]
        if failed:
            self.exit_code = EXIT_FAILED
            self.stderr.write(f"{len(failed)} of {len(reports)} album(s) failed:")
            for report in failed:
                self.stderr.write(f"  #{report.hashtag}: {report.error}")
        elif options["album"] and any(report.status == "busy" for report in reports):
            self.exit_code = EXIT_BUSY  # a named album was not fetched; a scheduled one is simply someone else's
        for report in reports:
            if report.status == "partial":  # the album was fetched; one of its sources was not
                for part in report.sources:
                    if part.status == "failed":
                        self.stderr.write(f"  #{report.hashtag}: {part.describe()}")
        if options["json"]:
            summary = {
                "started": started.isoformat(),
                "finished": timezone.now().isoformat(),
                "sources": [source.key for source in sources],
                "albums": [report.as_dict() for report in reports],
                "error": failure,
                "stopped": stopped,
                # What X bills: posts read per album today and this month, with the estimated cost.
                "cost_per_post": str(settings.EVERHASH_X_COST_PER_POST),
                "posts_read": posts_read(),
            }
            self.stdout.write(json.dumps(summary, indent=2))

    def _progress_printer(self, album: Album, *, tty: bool):
        def show(report: SourceReport) -> None:
            self.lock.touch()
            if not tty:
                return
            self.stdout.write(
                f"\r\033[K#{album.hashtag} ({report.label}): {report.posts_seen} posts, {report.added} added, "
                f"{report.duplicates} duplicates, {report.rejected} rejected",
                ending="",
            )
            self.stdout.flush()

        return show

    def _summary_line(self, report: AlbumReport) -> str:
        """One line per album: the totals, then a part per source ("mastodon.social: 12 posts, 9 pictures")."""
        parts = "; ".join(part.describe() for part in report.sources)
        if report.status == "dry_run":
            line = f"#{report.hashtag}: would store {report.new_photos} new photos ({report.requests} requests)"
            return f"{line}; {parts}" if parts else line
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
        if report.status == "stopped":
            line += ": stopped on request; the next run continues from here"
        if len(report.sources) > 1:
            line += f"; {parts}"
        elif report.error and report.status != "paused":  # a pause is explained once, after the albums
            line += f": {report.error}"
        return self.style.ERROR(line) if report.status == "failed" else line
