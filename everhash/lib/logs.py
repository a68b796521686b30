"""Structured logs: one JSON object per line, for journald, Loki, CloudWatch and friends.

Production logs (DEBUG off) use `JsonFormatter` unless EVERHASH_LOG_FORMAT=plain.
Fields passed with ``logger.info(..., extra={"album": "sunset"})`` become keys of
the object, so a log search can filter on them instead of parsing messages.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

# The attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}

# The logging formatters of the web, the workers and gunicorn (settings.LOGGING, gunicorn_conf.py).
FORMATTERS = {
    "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    "json": {"()": "everhash.lib.logs.JsonFormatter"},
}

# gunicorn's access log passes its "atoms" as the record's args: keep the useful ones as fields.
# "remote" is the socket's peer; "client" the client's address (everhash/lib/clientip.py).
_ACCESS = {
    "remote": "h",
    "client": "{everhash.client_ip}e",
    "method": "m",
    "path": "U",
    "status": "s",
    "bytes": "B",
    "ms": "M",
    "agent": "a",
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.name == "gunicorn.access" and isinstance(record.args, dict):
            entry.update({field: record.args.get(atom) for field, atom in _ACCESS.items()})
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)
