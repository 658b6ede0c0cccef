"""Webhooks: signed POSTs to a real local receiver, retries, refusals, and who may manage them."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import re
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.utils import timezone

from bedrock.actors import SYSTEM
from bedrock.events import delivery, services
from bedrock.events.delivery import BACKOFF, MAX_ATTEMPTS, webhook_deliveries_due
from bedrock.events.models import DeliveryStatus, Event, EventKind, Webhook, WebhookDelivery
from bedrock.events.services import (
    MAX_WEBHOOKS_PER_PROJECT,
    event_record,
    webhook_create,
    webhook_redeliver,
    webhook_test,
)
from bedrock.pipelines.models import Role
from bedrock.runs.services import runs_reconcile
from tests import factories
from tests.test_git import _self_signed_cert
from tests.test_graphql_api import client_for, data, gql

pytestmark = pytest.mark.django_db

README = Path(__file__).resolve().parent.parent / "README.md"


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that answers each POST with the next status in ``answers``
    (200 once they run out) and keeps what it was sent."""

    url: str = ""
    answers: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@contextmanager
def serving(tls: ssl.SSLContext | None = None) -> Iterator[Receiver]:
    """A :class:`Receiver` on a free port of 127.0.0.1, over TLS when given a context."""
    got = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.received.append((dict(self.headers.items()), body))
            status = got.answers.pop(0) if got.answers else 200
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(f"answer {status} ".encode() * 200)  # more than the 1 KB kept

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    scheme = "https" if tls else "http"
    got.url = f"{scheme}://127.0.0.1:{server.server_address[1]}/hooks/bedrock?team=ml"
    try:
        yield got
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serving() as got:
        yield got


@pytest.fixture
def private_allowed(settings) -> None:
    settings.BEDROCK_WEBHOOK_ALLOW_PRIVATE = True


def _owner_and_project():
    owner = factories.user()
    project = factories.project()
    factories.member(project, owner, Role.ADMIN)
    return owner, project


def _publish(project) -> None:
    event_record(
        project=project,
        kind=EventKind.MODEL_VERSION_PUBLISHED,
        payload={"model": {"id": 7, "name": "churn"}, "version": 3},
        actor=SYSTEM,
    )


def _sent_once(receiver: Receiver, answer: int):
    """A project's webhook to ``receiver``, and one event sent to it, answered ``answer``."""
    owner, project = _owner_and_project()
    receiver.answers = [answer]
    created = webhook_create(actor=owner, project=project, url=receiver.url)
    _publish(project)
    webhook_deliveries_due()
    return created, WebhookDelivery.objects.get()


def _due_again() -> None:
    """As if the backoff had passed: every pending delivery is due now."""
    WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )


def _readme_verifier():
    """The verification snippet of the README's Webhooks section, run as a receiver would."""
    section = README.read_text().split("## Webhooks", 1)[1]
    snippet = re.search(r"```python\n(.*?)```", section, re.S)
    assert snippet is not None, "the Webhooks section has a Python snippet"
    scope: dict = {}
    exec(snippet.group(1), scope)  # noqa: S102 - our own README
    return scope["verify"]


# --- sending ----------------------------------------------------------------------------------
def test_an_event_is_posted_signed_to_a_real_receiver(
    receiver, private_allowed, django_capture_on_commit_callbacks, caplog
) -> None:
    caplog.set_level("DEBUG")
    owner, project = _owner_and_project()
    created = webhook_create(actor=owner, project=project, url=receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        _publish(project)

    [(headers, body)] = receiver.received
    sent = json.loads(body)
    assert sent["kind"] == "model_version.published"
    assert sent["project"] == {"id": project.pk, "name": project.name}
    assert sent["payload"] == {"model": {"id": 7, "name": "churn"}, "version": 3}
    assert headers["X-Bedrock-Event"] == "model_version.published"
    row = WebhookDelivery.objects.get()
    assert headers["X-Bedrock-Delivery"] == str(row.pk)
    timestamp = headers["X-Bedrock-Timestamp"]
    assert timestamp.isdigit()
    expected = hmac.new(
        created.secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    assert headers["X-Bedrock-Signature"] == f"sha256={expected}"
    assert _readme_verifier()(created.secret, headers, body)
    assert not _readme_verifier()("whsec_another", headers, body)
    assert row.status == DeliveryStatus.DELIVERED
    assert row.attempts == 1 and row.last_status_code == 200
    assert len(row.response_excerpt) == 1024
    assert caplog.text and created.secret not in caplog.text


def test_the_readme_verifier_refuses_a_changed_body_and_an_old_timestamp() -> None:
    verify = _readme_verifier()
    body = b'{"id":1}'
    now = int(timezone.now().timestamp())
    headers = {
        "X-Bedrock-Timestamp": str(now),
        "X-Bedrock-Signature": delivery.signature("s3cret", now, body),
    }
    assert verify("s3cret", headers, body)
    assert not verify("s3cret", headers, b'{"id":2}')
    old = now - 3600
    stale = {
        "X-Bedrock-Timestamp": str(old),
        "X-Bedrock-Signature": delivery.signature("s3cret", old, body),
    }
    assert not verify("s3cret", stale, body)


def test_a_webhook_hears_only_the_kinds_it_subscribed_to(
    receiver, private_allowed, django_capture_on_commit_callbacks
) -> None:
    owner, project = _owner_and_project()
    webhook_create(
        actor=owner, project=project, url=receiver.url, kinds=[EventKind.MODEL_ALIAS_SET]
    )
    off = webhook_create(actor=owner, project=project, url=receiver.url).webhook
    Webhook.objects.filter(pk=off.pk).update(active=False)
    with django_capture_on_commit_callbacks(execute=True):
        _publish(project)
        event_record(
            project=project, kind=EventKind.MODEL_ALIAS_SET, payload={"alias": "prod"}, actor=SYSTEM
        )
        _publish(factories.project())  # another project's event
    assert [headers["X-Bedrock-Event"] for headers, _ in receiver.received] == ["model_alias.set"]


def test_an_event_in_a_transaction_that_rolls_back_sends_nothing(
    receiver, private_allowed, django_capture_on_commit_callbacks
) -> None:
    owner, project = _owner_and_project()
    webhook_create(actor=owner, project=project, url=receiver.url)
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        _publish(project)
        raise RuntimeError("the change failed")
    assert receiver.received == []
    assert not WebhookDelivery.objects.exists()


def test_a_500_is_retried_after_the_backoff_and_then_delivered(
    receiver, private_allowed, django_capture_on_commit_callbacks
) -> None:
    owner, project = _owner_and_project()
    webhook_create(actor=owner, project=project, url=receiver.url)
    receiver.answers = [500]
    before = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        _publish(project)
    after = timezone.now()
    row = WebhookDelivery.objects.get()
    assert (row.status, row.attempts, row.last_status_code) == (DeliveryStatus.PENDING, 1, 500)
    assert "HTTP 500" in row.last_error
    assert before + BACKOFF[0] <= row.next_attempt_at <= after + BACKOFF[0]
    assert webhook_deliveries_due() == 0  # not yet due
    assert len(receiver.received) == 1

    _due_again()
    runs_reconcile()  # the reconciler queues what is due
    row.refresh_from_db()
    assert (row.status, row.attempts, row.last_status_code) == (DeliveryStatus.DELIVERED, 2, 200)
    assert row.delivered_at is not None and row.next_attempt_at is None and row.last_error == ""
    assert len(receiver.received) == 2
    first, second = (headers["X-Bedrock-Delivery"] for headers, _ in receiver.received)
    assert first == second == str(row.pk)


def test_six_failures_end_failed_after_growing_waits(receiver, private_allowed) -> None:
    owner, project = _owner_and_project()
    webhook_create(actor=owner, project=project, url=receiver.url)
    receiver.answers = [503] * MAX_ATTEMPTS
    _publish(project)
    for wait in BACKOFF:
        before = timezone.now()
        webhook_deliveries_due()
        after = timezone.now()
        row = WebhookDelivery.objects.get()
        assert before + wait <= row.next_attempt_at <= after + wait
        _due_again()
    webhook_deliveries_due()
    row = WebhookDelivery.objects.get()
    assert (row.status, row.attempts, row.last_status_code) == (DeliveryStatus.FAILED, 6, 503)
    assert row.next_attempt_at is None
    assert len(receiver.received) == MAX_ATTEMPTS
    _due_again()
    assert webhook_deliveries_due() == 0
    assert len(receiver.received) == MAX_ATTEMPTS


def test_a_receiver_that_cannot_be_reached_is_recorded_and_retried(private_allowed) -> None:
    owner, project = _owner_and_project()
    with socket_closed_port() as port:
        webhook_create(actor=owner, project=project, url=f"http://127.0.0.1:{port}/")
        _publish(project)
        webhook_deliveries_due()
        row = WebhookDelivery.objects.get()
    assert row.status == DeliveryStatus.PENDING and row.attempts == 1
    assert row.last_status_code is None
    assert "ConnectionRefused" in row.last_error


def test_a_redirect_is_not_followed(receiver, private_allowed) -> None:
    _, row = _sent_once(receiver, 302)
    assert (row.status, row.last_status_code) == (DeliveryStatus.PENDING, 302)
    assert len(receiver.received) == 1


def test_an_attempt_is_sent_once_when_a_second_worker_runs_meanwhile(
    receiver, private_allowed, monkeypatch
) -> None:
    owner, project = _owner_and_project()
    webhook_create(actor=owner, project=project, url=receiver.url)
    _publish(project)
    row_id = WebhookDelivery.objects.get().pk
    real_post = delivery._post
    meanwhile: list[tuple[int, bool]] = []

    def post_while_another_worker_runs(*args):
        # Mid-send: another reconciler pass, and another worker given the same task.
        meanwhile.append((webhook_deliveries_due(), delivery.delivery_attempt(row_id)))
        return real_post(*args)

    monkeypatch.setattr(delivery, "_post", post_while_another_worker_runs)
    assert webhook_deliveries_due() == 1
    assert meanwhile == [(0, False)]
    assert len(receiver.received) == 1
    assert WebhookDelivery.objects.get().attempts == 1


def test_a_claimed_attempt_cannot_be_claimed_again(receiver, private_allowed) -> None:
    _, row = _sent_once(receiver, 500)
    _due_again()
    assert delivery.delivery_claim(row.pk) is not None
    assert delivery.delivery_claim(row.pk) is None  # the same attempt, by a second worker


def test_a_deactivated_webhook_gets_no_more_retries(receiver, private_allowed) -> None:
    created, _ = _sent_once(receiver, 500)
    Webhook.objects.filter(pk=created.webhook.pk).update(active=False)
    _due_again()
    webhook_deliveries_due()
    row = WebhookDelivery.objects.get()
    assert row.status == DeliveryStatus.FAILED and "deactivated" in row.last_error
    assert len(receiver.received) == 1


def test_a_test_event_and_a_redelivery_go_to_the_one_webhook(receiver, private_allowed) -> None:
    owner, project = _owner_and_project()
    hook = webhook_create(actor=owner, project=project, url=receiver.url).webhook
    webhook_create(actor=owner, project=project, url=receiver.url + "&other=1")
    tested = webhook_test(actor=owner, webhook=hook)
    webhook_deliveries_due()
    again = webhook_redeliver(actor=owner, delivery=tested)
    webhook_deliveries_due()
    assert again.pk != tested.pk and again.event_id == tested.event_id
    assert [h["X-Bedrock-Event"] for h, _ in receiver.received] == ["webhook.test"] * 2
    assert WebhookDelivery.objects.filter(status=DeliveryStatus.DELIVERED).count() == 2


def test_a_webhook_that_is_off_can_still_be_tested(receiver, private_allowed) -> None:
    owner, project = _owner_and_project()
    hook = webhook_create(actor=owner, project=project, url=receiver.url).webhook
    Webhook.objects.filter(pk=hook.pk).update(active=False)
    hook.refresh_from_db()
    webhook_test(actor=owner, webhook=hook)
    _publish(project)  # an ordinary event is not sent to it
    webhook_deliveries_due()
    assert [h["X-Bedrock-Event"] for h, _ in receiver.received] == ["webhook.test"]


# --- hostile input ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://0.0.0.0/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
    ],
)
def test_an_internal_address_is_refused_at_save(url: str) -> None:
    owner, project = _owner_and_project()
    with pytest.raises(ValidationError) as refused:
        webhook_create(actor=owner, project=project, url=url)
    assert "internal address" in str(refused.value.message_dict["url"])
    assert not Webhook.objects.exists()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://example.com/hook", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("https://user:pw@93.184.215.14/hook", "user:password@"),
        ("https://93.184.215.14/" + "a" * 2000, "at most 2000"),
    ],
)
def test_a_url_that_is_not_a_web_address_is_refused(url: str, says: str) -> None:
    owner, project = _owner_and_project()
    with pytest.raises(ValidationError) as refused:
        webhook_create(actor=owner, project=project, url=url)
    assert says in str(refused.value.message_dict["url"])


def test_a_public_address_is_accepted() -> None:
    owner, project = _owner_and_project()
    created = webhook_create(actor=owner, project=project, url="https://93.184.215.14/hook")
    assert created.webhook.url == "https://93.184.215.14/hook"


def test_an_address_that_turned_internal_is_refused_at_send(
    receiver, settings, private_allowed
) -> None:
    owner, project = _owner_and_project()
    webhook_create(actor=owner, project=project, url=receiver.url)
    settings.BEDROCK_WEBHOOK_ALLOW_PRIVATE = False  # as if its DNS now pointed inside
    _publish(project)
    webhook_deliveries_due()
    row = WebhookDelivery.objects.get()
    assert row.status == DeliveryStatus.PENDING and "internal address" in row.last_error
    assert receiver.received == []


def test_the_connection_goes_to_the_address_that_was_checked(
    receiver, private_allowed, monkeypatch
) -> None:
    import socket

    port = int(receiver.url.split(":")[2].split("/")[0])
    looked_up: list[str] = []

    def getaddrinfo(host, *args, **kwargs):
        # A name whose DNS answers once with the receiver, and would then answer elsewhere.
        looked_up.append(host)
        if len(looked_up) > 2:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port))]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(delivery.socket, "getaddrinfo", getaddrinfo)
    owner, project = _owner_and_project()
    webhook_create(actor=owner, project=project, url=f"http://hooks.example.com:{port}/in")
    _publish(project)
    webhook_deliveries_due()
    assert looked_up == ["hooks.example.com", "hooks.example.com"]  # at save, at send: once each
    [(headers, _)] = receiver.received
    assert headers["Host"] == f"hooks.example.com:{port}"
    assert WebhookDelivery.objects.get().status == DeliveryStatus.DELIVERED


def test_an_https_receiver_is_reached_by_name_with_its_certificate_checked(
    tmp_path, private_allowed, monkeypatch
) -> None:
    cert, key = _self_signed_cert(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    owner, project = _owner_and_project()
    with serving(tls) as got:
        url = got.url.replace("127.0.0.1", "localhost")
        webhook_create(actor=owner, project=project, url=url)
        _publish(project)
        webhook_deliveries_due()  # the certificate is trusted by no one yet
        row = WebhookDelivery.objects.get()
        assert "CERTIFICATE_VERIFY_FAILED" in row.last_error and got.received == []

        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # now the receiver's CA is trusted
        _due_again()
        webhook_deliveries_due()
    row.refresh_from_db()
    assert (row.status, row.last_status_code) == (DeliveryStatus.DELIVERED, 200)
    assert len(got.received) == 1


def test_a_project_has_at_most_twenty_webhooks() -> None:
    owner, project = _owner_and_project()
    for n in range(MAX_WEBHOOKS_PER_PROJECT):
        webhook_create(actor=owner, project=project, url=f"https://93.184.215.14/{n}")
    with pytest.raises(ValidationError, match="delete one first"):
        webhook_create(actor=owner, project=project, url="https://93.184.215.14/more")
    assert Webhook.objects.filter(project=project).count() == MAX_WEBHOOKS_PER_PROJECT


def test_a_webhook_is_sent_at_most_twenty_test_events_an_hour(monkeypatch) -> None:
    monkeypatch.setattr(services, "MAX_TESTS_PER_HOUR", 2)
    owner, project = _owner_and_project()
    hook = webhook_create(actor=owner, project=project, url="https://93.184.215.14/").webhook
    webhook_test(actor=owner, webhook=hook)
    webhook_test(actor=owner, webhook=hook)

    with pytest.raises(ValidationError, match="2 test events in the last hour"):
        webhook_test(actor=owner, webhook=hook)
    page = (
        client_for(owner)
        .post(f"/projects/{project.pk}/webhooks/{hook.pk}/test", follow=True)
        .content.decode()
    )

    assert "2 test events in the last hour" in page
    assert hook.deliveries.count() == 2


def test_the_reconciler_forgets_finished_deliveries_and_test_events_past_thirty_days(
    receiver, private_allowed
) -> None:
    owner, project = _owner_and_project()
    hook = webhook_create(actor=owner, project=project, url=receiver.url).webhook
    webhook_test(actor=owner, webhook=hook)
    _publish(project)
    _publish(project)
    webhook_deliveries_due()
    waiting = WebhookDelivery.objects.filter(event__kind=EventKind.MODEL_VERSION_PUBLISHED).first()
    # One still to be retried: kept, however old.
    WebhookDelivery.objects.filter(pk=waiting.pk).update(status=DeliveryStatus.PENDING)
    old = timezone.now() - timedelta(days=31)
    WebhookDelivery.objects.update(created_at=old)
    Event.objects.update(created_at=old)

    runs_reconcile()

    assert list(WebhookDelivery.objects.values_list("status", flat=True)) == [
        DeliveryStatus.PENDING
    ]
    assert not Event.objects.filter(kind=EventKind.WEBHOOK_TEST).exists()
    assert Event.objects.filter(kind=EventKind.MODEL_VERSION_PUBLISHED).count() == 2


def test_an_unknown_event_kind_is_refused() -> None:
    owner, project = _owner_and_project()
    with pytest.raises(ValidationError) as refused:
        webhook_create(
            actor=owner, project=project, url="https://93.184.215.14/", kinds=["model.exploded"]
        )
    assert "model.exploded" in str(refused.value.message_dict["kinds"])


def test_only_project_admins_create_webhooks() -> None:
    _, project = _owner_and_project()
    developer = factories.user()
    factories.member(project, developer, Role.DEVELOPER)
    with pytest.raises(PermissionDenied):
        webhook_create(actor=developer, project=project, url="https://93.184.215.14/")


# --- the secret -------------------------------------------------------------------------------
def test_the_secret_is_stored_encrypted_and_never_in_a_delivery(receiver, private_allowed) -> None:
    created, _ = _sent_once(receiver, 500)
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM events_webhook")
        [(stored,)] = cursor.fetchall()
    assert created.secret not in stored and stored.startswith("gAAAAA")
    assert created.secret not in repr(created) and created.secret not in str(created.webhook)
    row = WebhookDelivery.objects.values().get()
    assert created.secret not in json.dumps(row, default=str)


def test_rotatesecrets_reencrypts_webhook_secrets_so_the_old_key_can_go(settings) -> None:
    from cryptography.fernet import Fernet
    from django.core.management import call_command

    owner, project = _owner_and_project()
    created = webhook_create(actor=owner, project=project, url="https://93.184.215.14/")
    new_key = Fernet.generate_key().decode()
    settings.BEDROCK_SECRET_KEYS = [new_key, *settings.BEDROCK_SECRET_KEYS]
    call_command("rotatesecrets", stdout=io.StringIO())
    settings.BEDROCK_SECRET_KEYS = [new_key]
    assert Webhook.objects.get().secret == created.secret


def test_a_secret_no_key_opens_fails_the_attempt_with_a_hint(settings) -> None:
    from cryptography.fernet import Fernet

    owner, project = _owner_and_project()
    webhook_create(actor=owner, project=project, url="https://93.184.215.14/")
    settings.BEDROCK_SECRET_KEYS = [Fernet.generate_key().decode()]
    _publish(project)  # the change that records the event is not held up
    webhook_deliveries_due()
    row = WebhookDelivery.objects.get()
    assert row.attempts == 1 and "rotatesecrets" in row.last_error


def test_a_receiver_that_never_answers_times_out(private_allowed, monkeypatch) -> None:
    import socket

    monkeypatch.setattr(delivery, "TIMEOUT_SECONDS", 0.2)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts the connection, never answers
    owner, project = _owner_and_project()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
    try:
        webhook_create(actor=owner, project=project, url=url)
        _publish(project)
        webhook_deliveries_due()
    finally:
        listener.close()
    row = WebhookDelivery.objects.get()
    assert row.status == DeliveryStatus.PENDING and "timed out" in row.last_error


class socket_closed_port:
    """A port on 127.0.0.1 that nothing listens on, for as long as the block runs."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        return self.sock.getsockname()[1]

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


# --- the page ---------------------------------------------------------------------------------
@dataclass
class Team:
    owner: object
    member: object
    outsider: object
    project: object
    webhook: Webhook
    secret: str


@pytest.fixture
def team(receiver, private_allowed) -> Team:
    owner, project = _owner_and_project()
    member = factories.user()
    factories.member(project, member, Role.DEVELOPER)
    created = webhook_create(actor=owner, project=project, url=receiver.url, description="ops")
    return Team(owner, member, factories.user(), project, created.webhook, created.secret)


def _pages(team: Team) -> list[tuple[str, str]]:
    base = f"/projects/{team.project.pk}/webhooks"
    hook = f"{base}/{team.webhook.pk}"
    return [
        ("get", base),
        ("get", f"{hook}/"),
        ("get", f"{hook}/delete"),
        ("post", f"{hook}/delete"),
        ("post", f"{hook}/test"),
    ]


def test_the_owner_creates_a_webhook_and_sees_its_secret_once(client, team) -> None:
    client.force_login(team.owner)
    url = f"/projects/{team.project.pk}/webhooks"
    response = client.post(
        url,
        {"url": "https://93.184.215.14/hook", "description": "alerts", "kinds": ["run.finished"]},
    )
    assert response.status_code == 200
    new = Webhook.objects.get(description="alerts")
    assert new.kinds == ["run.finished"] and new.active
    match = re.search(r'value="(whsec_[^"]+)"', response.content.decode())
    assert match is not None and new.secret == match.group(1)
    assert response["Cache-Control"].startswith("max-age=0")
    listed = client.get(url).content.decode()
    assert "https://93.184.215.14/hook" in listed and match.group(1) not in listed
    assert team.secret not in listed and team.secret not in response.content.decode()


def test_the_page_refuses_an_internal_address(client, team, settings) -> None:
    settings.BEDROCK_WEBHOOK_ALLOW_PRIVATE = False
    client.force_login(team.owner)
    response = client.post(
        f"/projects/{team.project.pk}/webhooks", {"url": "http://169.254.169.254/latest"}
    )
    assert response.status_code == 200
    assert "internal address" in response.content.decode()
    assert Webhook.objects.count() == 1


def test_the_owner_tests_edits_redelivers_and_deletes(client, team, receiver) -> None:
    client.force_login(team.owner)
    hook = f"/projects/{team.project.pk}/webhooks/{team.webhook.pk}"
    assert client.post(f"{hook}/test").status_code == 302
    webhook_deliveries_due()
    page = client.get(f"{hook}/").content.decode()
    assert "webhook.test" in page and "Delivered" in page and "answer 200" in page
    assert team.secret not in page
    sent = WebhookDelivery.objects.get()
    assert client.post(f"{hook}/deliveries/{sent.pk}/redeliver").status_code == 302
    assert WebhookDelivery.objects.count() == 2

    response = client.post(f"{hook}/", {"description": "quiet", "kinds": ["model_alias.set"]})
    assert response.status_code == 302
    team.webhook.refresh_from_db()
    assert (team.webhook.description, team.webhook.kinds) == ("quiet", ["model_alias.set"])
    assert team.webhook.active is False  # the box was left unticked

    confirm = client.get(f"{hook}/delete")
    assert confirm.status_code == 200 and "cannot be undone" in confirm.content.decode()
    assert Webhook.objects.filter(pk=team.webhook.pk).exists()
    assert client.post(f"{hook}/delete").status_code == 302
    assert not Webhook.objects.filter(pk=team.webhook.pk).exists()


def test_the_delivery_log_is_paginated_newest_first(client, team) -> None:
    client.force_login(team.owner)
    for _ in range(30):
        _publish(team.project)
    hook = f"/projects/{team.project.pk}/webhooks/{team.webhook.pk}/"
    newest = WebhookDelivery.objects.order_by("-id").first()
    first = client.get(hook).content.decode()
    assert f"#{newest.event_id}," in first and "Page 1 of 2" in first
    oldest = WebhookDelivery.objects.order_by("id").first()
    assert f"#{oldest.event_id}," not in first
    assert f"#{oldest.event_id}," in client.get(hook + "?page=2").content.decode()


@pytest.mark.parametrize(("persona", "status"), [("member", 403), ("outsider", 404)])
def test_members_are_refused_and_outsiders_find_nothing(client, team, persona, status) -> None:
    client.force_login(getattr(team, persona))
    delivery_row = webhook_test(actor=team.owner, webhook=team.webhook)
    pages = [*_pages(team), ("post", f"{_pages(team)[1][1]}deliveries/{delivery_row.pk}/redeliver")]
    for method, url in pages:
        response = getattr(client, method)(url)
        assert response.status_code == status, url
        assert team.secret not in response.content.decode()
    assert Webhook.objects.filter(pk=team.webhook.pk).exists()
    assert WebhookDelivery.objects.count() == 1


def test_signed_out_visitors_are_sent_to_sign_in(client, team) -> None:
    response = client.get(f"/projects/{team.project.pk}/webhooks")
    assert response.status_code == 302 and "/login/" in response["Location"]


# --- the API ----------------------------------------------------------------------------------
CREATE = """
mutation($projectId: ID!, $url: String!, $kinds: [String!]) {
  createWebhook(projectId: $projectId, url: $url, kinds: $kinds, description: "ci") {
    ... on CreatedWebhook { secret webhook { id url kinds active } }
    ... on OperationInfo { messages { kind field message code } }
  }
}"""
DELETE = """
mutation($id: ID!) {
  deleteWebhook(id: $id) {
    ... on DeletedWebhook { id }
    ... on OperationInfo { messages { kind field message code } }
  }
}"""
LIST = """
query { projects { edges { node { name webhooks { id url description kinds recentDeliveries {
  eventId eventKind attempts status lastStatusCode lastError responseExcerpt nextAttemptAt
} } } } } }"""


def _projects(body: dict) -> list[dict]:
    return [edge["node"] for edge in body["data"]["projects"]["edges"]]


def test_the_owner_creates_a_webhook_through_the_api_and_gets_the_secret_once(team) -> None:
    owner = client_for(team.owner)
    made = data(
        owner,
        CREATE,
        projectId=str(team.project.pk),
        url="https://93.184.215.14/api",
        kinds=["model_alias.set"],
    )["createWebhook"]
    new = Webhook.objects.get(pk=made["webhook"]["id"])
    assert made["secret"] == new.secret and made["secret"].startswith("whsec_")
    assert made["webhook"] == {
        "id": str(new.pk),
        "url": "https://93.184.215.14/api",
        "kinds": ["model_alias.set"],
        "active": True,
    }
    listed = gql(owner, LIST)
    assert made["secret"] not in json.dumps(listed) and team.secret not in json.dumps(listed)
    [project] = _projects(listed)
    assert {hook["url"] for hook in project["webhooks"]} == {team.webhook.url, new.url}


def test_the_api_lists_recent_deliveries_without_the_secret(team) -> None:
    _publish(team.project)
    webhook_deliveries_due()
    body = gql(client_for(team.owner), LIST)
    [hook] = _projects(body)[0]["webhooks"]
    [sent] = hook["recentDeliveries"]
    assert sent["eventKind"] == "model_version.published" and sent["status"] == "delivered"
    assert sent["lastStatusCode"] == 200 and sent["attempts"] == 1
    assert team.secret not in json.dumps(body)


def test_the_api_refuses_an_internal_address(team, settings) -> None:
    settings.BEDROCK_WEBHOOK_ALLOW_PRIVATE = False
    made = data(
        client_for(team.owner), CREATE, projectId=str(team.project.pk), url="http://10.0.0.5/"
    )["createWebhook"]
    [message] = made["messages"]
    assert message["kind"] == "VALIDATION" and message["field"] == "url"
    assert "internal address" in message["message"]


def test_a_member_sees_no_webhooks_and_may_not_create_or_delete_one(team) -> None:
    member = client_for(team.member)
    assert _projects(gql(member, LIST)) == [{"name": team.project.name, "webhooks": []}]
    made = data(member, CREATE, projectId=str(team.project.pk), url="https://93.184.215.14/")
    assert made["createWebhook"]["messages"][0]["kind"] == "PERMISSION"
    gone = data(member, DELETE, id=str(team.webhook.pk))["deleteWebhook"]
    assert gone["messages"][0]["kind"] == "PERMISSION"
    assert Webhook.objects.count() == 1


def test_an_outsider_finds_no_project_and_no_webhook(team) -> None:
    outsider = client_for(team.outsider)
    assert _projects(gql(outsider, LIST)) == []
    made = data(outsider, CREATE, projectId=str(team.project.pk), url="https://93.184.215.14/")
    [message] = made["createWebhook"]["messages"]
    assert message["code"] == "not_found" and team.project.name not in message["message"]
    gone = data(outsider, DELETE, id=str(team.webhook.pk))["deleteWebhook"]
    assert gone["messages"][0]["code"] == "not_found"
    assert Webhook.objects.count() == 1


def test_the_owner_deletes_a_webhook_through_the_api(team) -> None:
    gone = data(client_for(team.owner), DELETE, id=str(team.webhook.pk))["deleteWebhook"]
    assert gone == {"id": str(team.webhook.pk)}
    assert not Webhook.objects.exists()
