"""Password reset by email, end to end: a real API, a real RQ worker process, a real SMTP server."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from email.message import EmailMessage
from email.utils import getaddresses
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from api import API, USER, assert_field_errors, login, register
from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry
from support import Mailbox, free_port, run_worker, settle, wait_for_jobs

from service.config import Rate, Settings, SmtpSettings
from service.store.keys import RedisKeys
from service.store.sealed_links import link_key, unseal
from workers.mailer import password_reset_message

SENT = {"message": "Password reset link sent"}
DONE = {"message": "Password has been reset"}
NEW_PASSWORD = "a brand new passphrase"
LINK = re.compile(r"https?://\S+")


# -- helpers ----------------------------------------------------------------------------------
def queue(settings: Settings, connection: redis.Redis) -> Queue:
    return Queue(settings.worker.queue, connection=connection)


def drain(settings: Settings, cwd: Path, connection: redis.Redis) -> str:
    """Run the real worker until nothing is queued or scheduled; returns all it printed."""
    output = ""
    for _ in range(5):
        worker = run_worker(settings, cwd)
        assert worker.returncode == 0, worker.stderr
        output += worker.stdout + worker.stderr
        scheduled = ScheduledJobRegistry(  # type: ignore[no-untyped-call]
            settings.worker.queue, connection=connection)
        if queue(settings, connection).count == 0 and scheduled.count == 0:
            return output
    raise AssertionError("the mail queue never emptied")


def ask_reset(client: httpx.Client, email: str = USER["email"]) -> None:
    response = client.post(API + "password-reset/", json={"email": email})
    assert response.status_code == 200, response.text
    assert response.json() == SENT


def mail_reset(client: httpx.Client, settings: Settings, cwd: Path, connection: redis.Redis,
               mailbox: Mailbox, email: str = USER["email"]) -> str:
    """Ask for a reset, let the worker send it, return the token from the newest email."""
    before = len(mailbox.messages)
    ask_reset(client, email)
    wait_for_jobs(settings, connection, 1)
    drain(settings, cwd, connection)
    assert len(mailbox.messages) == before + 1
    return token_from(mailbox.messages[-1])


def plain_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None, "no text/plain part"
    return part.get_content()  # type: ignore[no-any-return]


def html_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None, "no text/html part"
    return part.get_content()  # type: ignore[no-any-return]


def token_from(message: EmailMessage) -> str:
    link = LINK.search(plain_text(message))
    assert link, plain_text(message)
    token = re.search(r"token=([^&\s]+)", link.group(0))
    assert token, link.group(0)
    return token.group(1)


class Anchors(HTMLParser):
    """Every <a href> in an HTML document, with entities decoded as a mail client would."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs += [value or "" for name, value in attrs if name == "href"]


def hrefs(document: str) -> list[str]:
    parser = Anchors()
    parser.feed(document)
    return parser.hrefs


def confirm(client: httpx.Client, token: str, password: str = NEW_PASSWORD,
            password2: str | None = None) -> httpx.Response:
    return client.post(API + "password-reset/confirm/", json={
        "token": token, "password": password,
        "password2": password if password2 is None else password2})


def reset_key(settings: Settings, token: str) -> str:
    return RedisKeys(settings.redis.prefix).reset(token)


def deactivate(settings: Settings, username: str) -> None:
    path = settings.database.url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        db.execute("UPDATE users SET is_active = 0 WHERE username = ?", (username,))


# -- who gets an email ----------------------------------------------------------------------------
def test_unknown_email_gets_the_same_answer_and_no_email(
        client: httpx.Client, settings: Settings, smtp_server: Any, sync_redis: redis.Redis,
        tmp_path: Path) -> None:
    """API.md + OWASP Forgot Password cheat sheet (consistent answer): same 200, nothing sent."""
    mailbox, _ = smtp_server
    register(client)
    unknown = client.post(API + "password-reset/", json={"email": "nobody@example.com"})
    known = client.post(API + "password-reset/", json={"email": USER["email"]})
    assert unknown.status_code == known.status_code == 200
    assert unknown.json() == known.json() == SENT
    assert unknown.headers["content-type"] == known.headers["content-type"]
    wait_for_jobs(settings, sync_redis, 1)
    time.sleep(0.2)  # the unknown address's background task started first; give it slack
    assert queue(settings, sync_redis).count == 1
    drain(settings, tmp_path, sync_redis)
    assert [m["To"] for m in mailbox.messages] == [USER["email"]]


def test_unknown_email_alone_sends_nothing(client: httpx.Client, settings: Settings,
                                           smtp_server: Any, sync_redis: redis.Redis,
                                           tmp_path: Path) -> None:
    """API.md: password-reset/ for an unknown address answers 200 and the mailbox stays empty."""
    mailbox, _ = smtp_server
    ask_reset(client, "nobody@example.com")
    time.sleep(0.3)
    drain(settings, tmp_path, sync_redis)
    assert mailbox.messages == []
    assert not list(sync_redis.scan_iter(match=RedisKeys(settings.redis.prefix).every("reset")))


def test_inactive_user_gets_no_email(client: httpx.Client, settings: Settings,
                                     smtp_server: Any, sync_redis: redis.Redis,
                                     tmp_path: Path) -> None:
    """API.md: inactive accounts get the same 200 and no reset link (fastapi-users default)."""
    mailbox, _ = smtp_server
    register(client)
    register(client, username="bob", email="bob@example.com")
    deactivate(settings, "alice")
    ask_reset(client, USER["email"])
    ask_reset(client, "bob@example.com")
    wait_for_jobs(settings, sync_redis, 1)
    time.sleep(0.2)
    drain(settings, tmp_path, sync_redis)
    assert [m["To"] for m in mailbox.messages] == ["bob@example.com"]


# -- the email ------------------------------------------------------------------------------------
def test_email_has_text_and_html_parts_with_the_templated_link(
        settings: Settings, make_client: Any, smtp_server: Any, sync_redis: redis.Redis,
        tmp_path: Path) -> None:
    """API.md: the link follows password_reset.url_template; token opaque, URL-safe, 256 bits."""
    mailbox, _ = smtp_server
    template = "https://app.example.org/auth/reset/{token}?src=mail&lang=en"
    client = make_client(settings.replace(password_reset={"url_template": template}))
    register(client)
    ask_reset(client)
    wait_for_jobs(settings, sync_redis, 1)
    drain(settings, tmp_path, sync_redis)
    (message,) = mailbox.messages
    assert message["To"] == USER["email"] and message["Subject"]
    pattern = re.escape(template).replace(re.escape("{token}"), "([A-Za-z0-9_-]+)")
    links = re.findall(pattern, plain_text(message))
    assert len(links) == 1, plain_text(message)
    token = links[0]
    assert len(token) >= 43  # >= 256 bits of token_urlsafe
    link = template.replace("{token}", token)
    assert hrefs(html_text(message)) == [link]
    assert "&amp;lang=en" in html_text(message)  # the & is escaped inside the attribute
    assert confirm(client, token).status_code == 200


def test_user_supplied_text_cannot_reach_the_email_as_html(
        client: httpx.Client, settings: Settings, smtp_server: Any, sync_redis: redis.Redis,
        tmp_path: Path) -> None:
    """OWASP ASVS 5.3.1 (output encoding): no markup from users ends up in the reset email."""
    mailbox, _ = smtp_server
    for username in ("<script>", "\uff1cscript\uff1e", "a&b", 'x"y'):
        refused = client.post(API + "register/", json={**USER, "username": username})
        assert refused.status_code == 400 and "username" in refused.json()
    register(client, display_name="<script>alert(1)</script>")
    ask_reset(client)
    wait_for_jobs(settings, sync_redis, 1)
    drain(settings, tmp_path, sync_redis)
    (message,) = mailbox.messages
    for part in (plain_text(message), html_text(message)):
        assert "<script" not in part and "alert(1)" not in part
    assert "alice" in html_text(message)


def test_reset_email_html_escapes_what_it_interpolates() -> None:
    """OWASP ASVS 5.3.1: the HTML part escapes the username and the link (defence in depth)."""
    message = password_reset_message(SmtpSettings(), "bob@example.com", "<b>bob</b>&",
                                     'https://x.example/r?a=1&token="><script>', 60)
    document = html_text(message)
    assert "<b>" not in document and "<script>" not in document
    assert "&lt;b&gt;bob&lt;/b&gt;&amp;" in document
    assert hrefs(document) == ['https://x.example/r?a=1&token="><script>']


@pytest.mark.parametrize("email", ["alice,mallory@example.com", "mallory;x@example.com",
                                   "<carol@example.com>"])
def test_reset_email_goes_to_exactly_the_stored_address(
        client: httpx.Client, settings: Settings, smtp_server: Any, sync_redis: redis.Redis,
        tmp_path: Path, email: str) -> None:
    """API.md: the link goes to the account's email, exactly; one unmailable as-is is a 400."""
    mailbox, _ = smtp_server
    created = client.post(API + "register/", json={**USER, "email": email})
    if created.status_code == 400:
        assert "email" in created.json()
        return
    assert created.status_code == 201
    stored = created.json()["user"]["email"]
    ask_reset(client, stored)
    wait_for_jobs(settings, sync_redis, 1)
    drain(settings, tmp_path, sync_redis)
    assert len(mailbox.messages) == 1
    assert getaddresses([str(mailbox.messages[0]["To"])]) == [("", stored)]


# -- the token ------------------------------------------------------------------------------------
def test_token_is_single_use(client: httpx.Client, settings: Settings, smtp_server: Any,
                             sync_redis: redis.Redis, tmp_path: Path) -> None:
    """API.md + OWASP Forgot Password cheat sheet: a reset token is single use."""
    register(client)
    token = mail_reset(client, settings, tmp_path, sync_redis, smtp_server[0])
    first = confirm(client, token)
    assert first.status_code == 200 and first.json() == DONE
    assert_field_errors(confirm(client, token, "yet another passphrase"), "token", only=False)
    assert login(client, password=NEW_PASSWORD).status_code == 200
    assert login(client, password="yet another passphrase").status_code == 401


def test_two_concurrent_confirms_with_one_token_exactly_one_wins(
        client: httpx.Client, settings: Settings, smtp_server: Any, sync_redis: redis.Redis,
        tmp_path: Path) -> None:
    """API.md single use + OWASP Forgot Password cheat sheet: it holds under a race too."""
    register(client)
    token = mail_reset(client, settings, tmp_path, sync_redis, smtp_server[0])
    racers = 4
    barrier = threading.Barrier(racers)
    results: list[httpx.Response] = []

    def race(index: int) -> None:
        with httpx.Client(base_url=client.base_url, timeout=30) as own:
            barrier.wait()
            results.append(confirm(own, token, f"racing passphrase {index}"))

    threads = [threading.Thread(target=race, args=(i,)) for i in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(r.status_code for r in results) == [200] + [400] * (racers - 1)
    for loser in (r for r in results if r.status_code == 400):
        assert_field_errors(loser, "token", only=False)
    winners = [i for i in range(racers)
               if login(client, password=f"racing passphrase {i}").status_code == 200]
    assert len(winners) == 1


def test_expired_token_is_400_on_token(client: httpx.Client, settings: Settings,
                                       smtp_server: Any, sync_redis: redis.Redis,
                                       tmp_path: Path) -> None:
    """API.md: a reset token is valid for password_reset.ttl; afterwards 400 on `token`."""
    register(client)
    token = mail_reset(client, settings, tmp_path, sync_redis, smtp_server[0])
    key = reset_key(settings, token)
    assert sync_redis.pexpire(key, 50)  # let Redis expire it, as the TTL would
    deadline = time.monotonic() + 5
    while sync_redis.exists(key):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert_field_errors(confirm(client, token), "token", only=False)
    assert login(client, password=USER["password"]).status_code == 200


def test_reset_key_is_a_hash_with_a_bounded_ttl(settings: Settings, make_client: Any,
                                                smtp_server: Any, sync_redis: redis.Redis,
                                                tmp_path: Path) -> None:
    """API.md Redis conventions: `{prefix}reset:<sha256 hex>`, no plaintext, TTL <= ttl."""
    client = make_client(settings.replace(password_reset={"ttl": 600}))
    register(client)
    token = mail_reset(client, settings, tmp_path, sync_redis, smtp_server[0])
    pattern = RedisKeys(settings.redis.prefix).every("reset")
    keys = [k.decode() for k in sync_redis.scan_iter(match=pattern)]
    assert keys == [reset_key(settings, token)]
    assert 0 < sync_redis.ttl(keys[0]) <= 600
    for key in sync_redis.scan_iter(match=f"{settings.redis.prefix}*"):
        assert token not in key.decode()
        assert sync_redis.ttl(key) > 0  # no immortal keys
        if sync_redis.type(key) == b"string":
            assert token.encode() not in (sync_redis.get(key) or b"")
        elif sync_redis.type(key) == b"hash":
            assert all(token.encode() not in v for v in sync_redis.hgetall(key).values())


# -- a bad new password does not burn the link ----------------------------------------------------
@pytest.mark.parametrize("password, password2, field", [
    (NEW_PASSWORD, NEW_PASSWORD + "!", "password2"),
    ("password123", "password123", "password"),
    ("short", "short", "password"),
    ("alice", "alice", "password"),
    (USER["email"], USER["email"], "password"),
], ids=["mismatch", "common", "too-short", "equals-username", "equals-email"])
def test_rejected_new_password_does_not_burn_the_token(
        client: httpx.Client, settings: Settings, smtp_server: Any, sync_redis: redis.Redis,
        tmp_path: Path, password: str, password2: str, field: str) -> None:
    """API.md + NIST 800-63B: a refused new password is 400 on it, and the link still works."""
    register(client)
    token = mail_reset(client, settings, tmp_path, sync_redis, smtp_server[0])
    ttl_before = sync_redis.ttl(reset_key(settings, token))
    assert_field_errors(confirm(client, token, password, password2), field, only=False)
    assert 0 < sync_redis.ttl(reset_key(settings, token)) <= ttl_before
    assert login(client, password=USER["password"]).status_code == 200  # nothing changed
    retried = confirm(client, token)
    assert retried.status_code == 200 and retried.json() == DONE
    assert login(client, password=NEW_PASSWORD).status_code == 200


def test_unencodable_new_password_is_400_and_does_not_burn_the_token(
        client: httpx.Client, settings: Settings, smtp_server: Any, sync_redis: redis.Redis,
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """API.md: bad input of any kind is a 4xx, never a 500; a refused password keeps the link."""
    register(client)
    token = mail_reset(client, settings, tmp_path, sync_redis, smtp_server[0])
    body = json.dumps({"token": token, "password": NEW_PASSWORD + "\ud800",
                       "password2": NEW_PASSWORD + "\ud800"})
    response = client.post(API + "password-reset/confirm/", content=body,
                           headers={"Content-Type": "application/json"})
    settle(client, caplog)
    assert_field_errors(response, "password", only=False)
    assert confirm(client, token).status_code == 200


# -- what a reset kills ---------------------------------------------------------------------------
def test_reset_kills_other_reset_tokens_and_earlier_refresh_tokens(
        client: httpx.Client, settings: Settings, smtp_server: Any, sync_redis: redis.Redis,
        tmp_path: Path) -> None:
    """API.md + OWASP ASVS 3.3.3: a reset ends earlier sessions and other reset tokens."""
    mailbox, _ = smtp_server
    sessions = [register(client)["refresh"]]
    sessions.append(login(client).json()["refresh"])
    first = mail_reset(client, settings, tmp_path, sync_redis, mailbox)
    second = mail_reset(client, settings, tmp_path, sync_redis, mailbox)
    assert first != second
    assert confirm(client, second).status_code == 200
    assert_field_errors(confirm(client, first, "yet another passphrase"), "token", only=False)
    for refresh in sessions:
        stale = client.post(API + "token/refresh/", json={"refresh": refresh})
        assert stale.status_code == 401 and stale.json()["code"] == "token_not_valid"
        assert stale.json()["reason"] == "password_changed"
    assert login(client, password=USER["password"]).status_code == 401
    assert login(client, password=NEW_PASSWORD).status_code == 200


# -- SMTP trouble ---------------------------------------------------------------------------------
def test_refused_once_the_email_is_retried_and_arrives(
        client: httpx.Client, settings: Settings, smtp_server: Any, sync_redis: redis.Redis,
        tmp_path: Path) -> None:
    """rq Retry declared at enqueue: a 451 from the SMTP server is retried, then delivered."""
    mailbox, _ = smtp_server
    register(client)
    mailbox.refuse_next = 1
    ask_reset(client)
    wait_for_jobs(settings, sync_redis, 1)
    drain(settings, tmp_path, sync_redis)
    assert mailbox.refuse_next == 0
    assert len(mailbox.messages) == 1
    assert FailedJobRegistry(settings.worker.queue, connection=sync_redis).count == 0
    assert confirm(client, token_from(mailbox.messages[0])).status_code == 200


def assert_failed_quietly(settings: Settings, connection: redis.Redis, worker_output: str) -> str:
    """The one job is in RQ's failed registry, kept no longer than the link lives, and the
    link is in neither its description, its error nor the worker's output. Returns its id."""
    registry = FailedJobRegistry(settings.worker.queue, connection=connection)
    (job_id,) = registry.get_job_ids()
    job = Job.fetch(job_id, connection=connection)
    assert "link" not in job.kwargs  # sealed for the worker: opened here with the shared key
    assert job.func_name is not None
    link = unseal(link_key(settings.jwt.secret), job.kwargs["sealed_link"], job=job.func_name,
                  to=job.kwargs["to"])
    token = re.search(r"token=([^&\s]+)", link).group(1)  # type: ignore[union-attr]
    assert token not in (job.description or "")
    assert token not in worker_output and link not in worker_output
    result = job.latest_result()
    assert result is None or token not in (result.exc_string or "")
    ttl = settings.password_reset.ttl
    assert 0 < connection.ttl(job.key) <= ttl
    expires_in = registry.get_expiration_time(job).timestamp() - time.time()
    assert 0 < expires_in <= ttl + 5
    return job_id


def test_smtp_refusing_every_attempt_ends_in_the_failed_registry(
        client: httpx.Client, settings: Settings, smtp_server: Any, sync_redis: redis.Redis,
        tmp_path: Path) -> None:
    """API.md Redis conventions: a job past its retries fails with a short TTL, link unlogged."""
    mailbox, _ = smtp_server
    register(client)
    mailbox.refuse_next = 100
    ask_reset(client)
    wait_for_jobs(settings, sync_redis, 1)
    output = drain(settings, tmp_path, sync_redis)
    assert mailbox.messages == []
    attempts = 100 - mailbox.refuse_next
    assert attempts == 1 + len(settings.worker.retry_intervals)
    assert_failed_quietly(settings, sync_redis, output)


def test_api_answers_200_while_smtp_is_down(settings: Settings, make_client: Any,
                                            sync_redis: redis.Redis, tmp_path: Path) -> None:
    """API.md: the email is sent by the worker, so password-reset/ answers 200 without SMTP."""
    down = settings.replace(smtp={"port": free_port()})  # nothing listens there
    client = make_client(down)
    register(client)
    started = time.monotonic()
    ask_reset(client)
    assert time.monotonic() - started < 2
    wait_for_jobs(down, sync_redis, 1)
    output = drain(down, tmp_path, sync_redis)
    assert_failed_quietly(down, sync_redis, output)


# -- a flood for one address ----------------------------------------------------------------------
def mails_counted(settings: Settings, connection: redis.Redis, address: str) -> int:
    return int(connection.get(RedisKeys(settings.redis.prefix).mails(address)) or 0)


def wait_for_count(settings: Settings, connection: redis.Redis, address: str,
                   count: int) -> None:
    """Each request's background task counts its mail: wait until all of them have run."""
    deadline = time.monotonic() + 10
    while mails_counted(settings, connection, address) < count:
        assert time.monotonic() < deadline, "the background tasks never ran"
        time.sleep(0.02)


def test_a_flood_for_one_address_answers_its_owner_alike_and_mails_at_most_the_cap(
        settings: Settings, make_client: Any, sync_redis: redis.Redis) -> None:
    """Issue 9 (1): a flood of reset requests for one address (from many IPs) made the
    service answer its owner 429. Now every request is answered the same 200; the mailbox is
    protected by [password_reset] max_mails_per_hour (default 3), silently."""
    client = make_client(settings.replace(
        rate_limit={"enabled": True, "password_reset": Rate(5, 3600)},
        server={"trusted_proxies": ("127.0.0.1",)}))
    register(client)
    register(client, username="bob", email="bob@example.com")
    flood = [client.post(API + "password-reset/", json={"email": "Alice@Example.com"},
                         headers={"X-Forwarded-For": f"10.20.0.{i}"}) for i in range(12)]
    owner = client.post(API + "password-reset/", json={"email": USER["email"]},
                        headers={"X-Forwarded-For": "10.20.1.1"})
    assert [r.status_code for r in flood] == [200] * 12 and owner.status_code == 200
    assert all(r.json() == SENT for r in [*flood, owner])
    wait_for_count(settings, sync_redis, USER["email"], 13)
    wait_for_jobs(settings, sync_redis, 3)  # a task enqueues its mail after counting it
    assert queue(settings, sync_redis).count == Settings().password_reset.max_mails_per_hour == 3
    ask_reset(client, "bob@example.com")  # another address keeps its own allowance
    wait_for_jobs(settings, sync_redis, 4)
    keys = list(sync_redis.scan_iter(match=RedisKeys(settings.redis.prefix).every("mails")))
    assert len(keys) == 2 and all(0 < sync_redis.ttl(k) <= 3600 for k in keys)
    # One client is still limited by its IP, whatever addresses it names.
    same_ip = [client.post(API + "password-reset/", json={"email": f"x{i}@example.com"},
                           headers={"X-Forwarded-For": "10.20.2.1"}).status_code
               for i in range(6)]
    assert same_ip == [200] * 5 + [429]
