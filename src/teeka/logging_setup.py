"""structlog JSON logs. Nothing personal is logged in full: mobiles masked, no OTP, no ID."""

from __future__ import annotations

import logging

import structlog


class WithoutQuery(logging.Filter):
    """Drops the query string from uvicorn's access log lines: a search by mobile number or a
    signed link (`?sig=`) must not land in the logs in full. The path stays."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            path, sep, _ = args[2].partition("?")
            record.args = (*args[:2], path + ("?…" if sep else ""), *args[3:])
        return True


def configure(level: str = "INFO") -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, WithoutQuery) for f in access.filters):
        access.addFilter(WithoutQuery())
    logging.basicConfig(format="%(message)s", level=getattr(logging, level.upper(), logging.INFO))
    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.TimeStamper("iso"),
                    structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(
            getattr(logging, level.upper(), logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(),
        cache_logger_on_first_use=True,
    )
