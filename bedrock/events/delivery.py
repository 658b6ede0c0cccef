"""Sending events to webhooks: the one module that makes outbound HTTP calls.

Each attempt is claimed by a compare-and-swap on the delivery's attempt count, so two workers
never send the same attempt. The claim moves ``next_attempt_at`` to when the following attempt
would be due, so a worker that dies mid-send leaves its retry already scheduled; the reconciler
queues whatever is due (:func:`webhook_deliveries_due`).

A project admin chooses the URL, so every address it resolves to is checked, at save and again
at each send (DNS can change), and the connection goes to the very address that was checked.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import http.client
import ipaddress
import json
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from bedrock.events.models import (
    RESPONSE_EXCERPT_BYTES,
    WEBHOOK_URL_MAX_LENGTH,
    DeliveryStatus,
    Event,
    EventKind,
    Webhook,
    WebhookDelivery,
)
from bedrock.secrets.crypto import SecretDecryptionError

# The wait after each failed attempt; one attempt more than waits, then the delivery has failed.
BACKOFF = (
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(hours=1),
    timedelta(hours=6),
)
MAX_ATTEMPTS = len(BACKOFF) + 1
TIMEOUT_SECONDS = 10
# The last attempt has no retry to schedule; this long after its claim, it counts as lost.
LAST_ATTEMPT_LEASE = timedelta(seconds=4 * TIMEOUT_SECONDS)
# How many due deliveries one reconciler pass queues; the rest wait for the next pass.
DUE_BATCH = 200
ERROR_CHARS = 200
SCHEMES = {"http": 80, "https": 443}
USER_AGENT = "Bedrock-Webhooks/1"

Address = tuple[int, Any]  # (address family, socket address) as getaddrinfo gives them


class WebhookAddressError(ValueError):
    """A webhook URL that may not be used: its message says why and what to do."""


# --- addresses ------------------------------------------------------------------------------
def _is_internal(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    # is_global is False for loopback, link-local (169.254/16, cloud metadata), private,
    # shared (100.64/10), reserved and unspecified addresses alike.
    return not address.is_global or address.is_multicast


def _split(url: str) -> tuple[str, str, int]:
    """The scheme, host and port of a usable webhook URL, or WebhookAddressError."""
    if len(url) > WEBHOOK_URL_MAX_LENGTH:
        raise WebhookAddressError(f"A webhook URL has at most {WEBHOOK_URL_MAX_LENGTH} characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookAddressError(f"This is not a URL: {exc}.") from exc
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise WebhookAddressError("A webhook URL starts with http:// or https:// and names a host.")
    if parts.username is not None or parts.password is not None:
        raise WebhookAddressError(
            "Leave user:password@ out of the URL; the signature tells the receiver it is us."
        )
    return parts.scheme, parts.hostname, port or SCHEMES[parts.scheme]


def resolve(host: str, port: int) -> list[Address]:
    """Every address ``host`` resolves to, or WebhookAddressError if one is internal."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise WebhookAddressError(f"The host {host} cannot be resolved ({exc}).") from exc
    addresses: list[Address] = [(family, sockaddr) for family, _, _, _, sockaddr in found]
    if not settings.BEDROCK_WEBHOOK_ALLOW_PRIVATE:
        internal = sorted(
            {str(sockaddr[0]) for _, sockaddr in addresses if _is_internal(str(sockaddr[0]))}
        )
        if internal:
            raise WebhookAddressError(
                f"The host {host} resolves to {', '.join(internal)}, an internal address "
                "(loopback, link-local, private or unspecified); webhooks go to public "
                "addresses unless BEDROCK_WEBHOOK_ALLOW_PRIVATE is on."
            )
    return addresses


def url_check(url: str) -> None:
    """Raise WebhookAddressError unless ``url`` may receive webhooks now."""
    _, host, port = _split(url)
    resolve(host, port)


# --- what is sent ---------------------------------------------------------------------------
def event_body(event: Event) -> bytes:
    document = {
        "id": event.pk,
        "kind": event.kind,
        "created_at": event.created_at.isoformat(),
        "project": {"id": event.project_id, "name": event.project.name},
        "payload": event.payload,
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=`` and the hex HMAC-SHA256 of ``<timestamp>.<body>`` under the secret."""
    signed = f"{timestamp}.".encode() + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Outcome:
    status_code: int | None = None
    error: str = ""
    excerpt: str = ""

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _connect(addresses: list[Address], timeout: float) -> socket.socket:
    """A connection to the first of the checked addresses that answers."""
    last: OSError = OSError("no address to connect to")
    for family, sockaddr in addresses:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        return sock
    raise last


def _connection(scheme: str, host: str, port: int) -> http.client.HTTPConnection:
    """A connection that can only reach the addresses checked just now: the name is not
    resolved a second time, so DNS cannot answer differently between the check and the send."""
    addresses = resolve(host, port)
    cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
    conn = cls(host, port, timeout=TIMEOUT_SECONDS)
    # http.client connects through this hook in HTTPConnection.connect (HTTPS wraps the socket
    # afterwards, with the host name for SNI and certificate checks).
    conn._create_connection = lambda *_args, **_kw: _connect(addresses, TIMEOUT_SECONDS)  # type: ignore[attr-defined]
    return conn


def _post(url: str, body: bytes, headers: dict[str, str]) -> Outcome:
    """POST once; redirects are answers, never followed, and only the first KB is read."""
    try:
        scheme, host, port = _split(url)
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn = _connection(scheme, host, port)
        try:
            conn.request("POST", target, body=body, headers=headers)
            response = conn.getresponse()
            excerpt = response.read(RESPONSE_EXCERPT_BYTES)
        finally:
            conn.close()
    except WebhookAddressError as exc:
        return Outcome(error=str(exc)[:ERROR_CHARS])
    except (OSError, http.client.HTTPException) as exc:
        return Outcome(error=f"{type(exc).__name__}: {exc}"[:ERROR_CHARS])
    text = excerpt.decode("utf-8", errors="replace")[:RESPONSE_EXCERPT_BYTES]
    error = "" if 200 <= response.status < 300 else f"The receiver answered HTTP {response.status}."
    return Outcome(status_code=response.status, error=error, excerpt=text)


# --- deliveries -----------------------------------------------------------------------------
def deliveries_create(event: Event) -> list[WebhookDelivery]:
    """One delivery per active webhook of the event's project that wants its kind, in the
    caller's transaction, each sent once that transaction commits."""
    # Only what the choice needs: the secret is not decrypted inside the caller's transaction.
    webhooks = Webhook.objects.filter(project_id=event.project_id, active=True).only("kinds")
    wanted = [webhook for webhook in webhooks if webhook.subscribes_to(event.kind)]
    return deliveries_start(event, wanted)


def deliveries_start(event: Event, webhooks: Iterable[Webhook]) -> list[WebhookDelivery]:
    created = WebhookDelivery.objects.bulk_create(
        [WebhookDelivery(webhook=webhook, event=event) for webhook in webhooks]
    )
    ids = [delivery.pk for delivery in created]
    if ids:
        transaction.on_commit(functools.partial(deliveries_enqueue, ids))
    return created


def deliveries_enqueue(delivery_ids: Iterable[int]) -> None:
    from django_q.tasks import async_task

    for delivery_id in delivery_ids:
        async_task(
            "bedrock.events.tasks.webhook_delivery_send",
            delivery_id,
            task_name=f"webhook-delivery-{delivery_id}",
            group="webhooks",
        )


def webhook_deliveries_due(now: datetime | None = None) -> int:
    """Queue an attempt of every pending delivery whose time has come; the number queued.

    Called by the reconciler every minute, so a 30 s backoff waits between 30 and 90 s. Queuing
    the same delivery twice is harmless: only one of the tasks wins the claim.
    """
    now = now or timezone.now()
    due = list(
        WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at", "id")
        .values_list("pk", flat=True)[:DUE_BATCH]
    )
    deliveries_enqueue(due)
    return len(due)


def _next_attempt_at(attempt: int, now: datetime) -> datetime:
    return now + (BACKOFF[attempt - 1] if attempt <= len(BACKOFF) else LAST_ATTEMPT_LEASE)


def delivery_claim(delivery_id: int, now: datetime | None = None) -> WebhookDelivery | None:
    """Claim the next attempt of a due delivery; None if it is not due or another worker won.

    A delivery whose attempts are spent (its last worker died before recording an answer) is
    marked failed instead.
    """
    now = now or timezone.now()
    delivery = (
        WebhookDelivery.objects.select_related("webhook", "event__project")
        .defer("webhook__secret")  # read only to sign, where a key problem is recorded
        .filter(pk=delivery_id, status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
        .first()
    )
    if delivery is None:
        return None
    same = WebhookDelivery.objects.filter(
        pk=delivery.pk, status=DeliveryStatus.PENDING, attempts=delivery.attempts
    )
    # An admin may test a webhook before turning it on; nothing else goes to one that is off.
    stopped = not delivery.webhook.active and delivery.event.kind != EventKind.WEBHOOK_TEST
    if delivery.attempts >= MAX_ATTEMPTS or stopped:
        error = (
            "The webhook was deactivated before this was delivered."
            if stopped
            else "No answer was recorded for the last attempt."
        )
        same.update(status=DeliveryStatus.FAILED, next_attempt_at=None, last_error=error)
        return None
    attempt = delivery.attempts + 1
    next_at = _next_attempt_at(attempt, now)
    if not same.update(attempts=attempt, next_attempt_at=next_at):
        return None
    delivery.attempts, delivery.next_attempt_at = attempt, next_at
    return delivery


def _headers(delivery: WebhookDelivery, body: bytes) -> dict[str, str]:
    timestamp = int(time.time())
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Bedrock-Event": delivery.event.kind,
        "X-Bedrock-Delivery": str(delivery.pk),
        "X-Bedrock-Timestamp": str(timestamp),
        "X-Bedrock-Signature": signature(delivery.webhook.secret, timestamp, body),
    }


def _record(delivery: WebhookDelivery, outcome: Outcome) -> None:
    fields: dict[str, Any] = {
        "last_status_code": outcome.status_code,
        "last_error": outcome.error,
        "response_excerpt": outcome.excerpt,
    }
    if outcome.delivered:
        fields.update(
            status=DeliveryStatus.DELIVERED, delivered_at=timezone.now(), next_attempt_at=None
        )
    elif delivery.attempts >= MAX_ATTEMPTS:
        fields.update(status=DeliveryStatus.FAILED, next_attempt_at=None)
    WebhookDelivery.objects.filter(
        pk=delivery.pk, status=DeliveryStatus.PENDING, attempts=delivery.attempts
    ).update(**fields)


def delivery_attempt(delivery_id: int) -> bool:
    """Make the next attempt of a delivery if it is due and no one else makes it; True if this
    call sent it and the receiver took it."""
    delivery = delivery_claim(delivery_id)
    if delivery is None:
        return False
    body = event_body(delivery.event)
    try:
        headers = _headers(delivery, body)
    except SecretDecryptionError as exc:  # a key was dropped too soon: say so in the log
        _record(delivery, Outcome(error=str(exc)[:ERROR_CHARS]))
        return False
    outcome = _post(delivery.webhook.url, body, headers)
    _record(delivery, outcome)
    return outcome.delivered
