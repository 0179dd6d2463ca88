"""E-mail for notifications (``COINPURSE_SMTP_URL``): an outbox table written with each
notification, sent by a job with retries, never inside a money transaction.

A sender leases due rows (like webhook deliveries), renders the text and HTML templates
(``templates/``, Jinja2 with autoescaping for HTML), and sends through ``aiosmtplib``.
A failure is retried with exponential backoff up to ``COINPURSE_EMAIL_MAX_ATTEMPTS``.
"""

from __future__ import annotations

import logging
import random
from datetime import timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy.ext.asyncio import AsyncEngine

from coinpurse.core.clock import utcnow
from coinpurse.core.ids import new_id
from coinpurse.events import repository
from coinpurse.events.notifications import Notification
from coinpurse.events.settings import EventSettings

log = logging.getLogger("coinpurse.mail")
BATCH = 20
LEASE_S = 120
TIMEOUT_S = 30.0
BACKOFF_MAX_S = 3600.0
PRODUCT = "Coinpurse"

_templates = Environment(loader=PackageLoader("coinpurse.events", "templates"),
                         autoescape=select_autoescape(["html"]), keep_trailing_newline=True)


def render(note: Notification, sender: str, to: str) -> EmailMessage:
    """The e-mail of a notification: plain text, with an HTML alternative."""
    values = {"title": note.title, "body": note.body, "product": PRODUCT, "data": note.data}
    message = EmailMessage()
    message["Subject"] = note.title
    message["From"] = sender
    message["To"] = to
    message["Message-ID"] = f"<{note.id}@coinpurse>"  # stable: a resend is the same mail
    message.set_content(_templates.get_template("notification.txt").render(values))
    message.add_alternative(_templates.get_template("notification.html").render(values),
                            subtype="html")
    return message


def smtp_options(url: str) -> dict[str, Any]:
    """aiosmtplib's options from ``smtp://user:password@host:port?starttls=true`` or
    ``smtps://...`` (TLS from the start)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    implicit = parts.scheme == "smtps"
    options: dict[str, Any] = {
        "hostname": parts.hostname, "port": parts.port or (465 if implicit else 25),
        "use_tls": implicit, "timeout": TIMEOUT_S,
        "start_tls": query.get("starttls", ["false"])[0] == "true",
    }
    if parts.username:
        options["username"] = unquote(parts.username)
        options["password"] = unquote(parts.password or "")
    return options


def backoff_s(attempts: int, base_s: float) -> float:
    ceiling = min(base_s * 2 ** min(attempts - 1, 16), BACKOFF_MAX_S)
    return random.uniform(ceiling / 2, ceiling)


async def send_due(db: AsyncEngine, settings: EventSettings) -> int:
    """Send the e-mails that are due; returns how many were leased."""
    if settings.smtp_url is None:
        return 0
    now = utcnow()
    token = new_id()
    async with db.begin() as conn:
        leased = await repository.claim_emails(conn, now=now,
                                               until=now + timedelta(seconds=LEASE_S),
                                               token=token, limit=BATCH)
    options = smtp_options(settings.smtp_url)
    for mail, note_row in leased:
        note = Notification.of(note_row)
        values: dict[str, Any]
        try:
            await aiosmtplib.send(render(note, settings.smtp_from, mail.to_address), **options)
            values = {"status": "sent", "sent_at": utcnow(), "last_error": None}
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
            log.warning("e-mail %s not sent: %s", mail.id, error)
            values = ({"status": "failed", "last_error": error}
                      if mail.attempts >= settings.email_max_attempts else
                      {"last_error": error, "next_attempt_at": utcnow() + timedelta(
                          seconds=backoff_s(mail.attempts, settings.email_backoff_base_s))})
        async with db.begin() as conn:
            await repository.finish_email(conn, mail.id, token, values)
    return len(leased)
