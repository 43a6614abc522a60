"""What a person does on the hosted pages, by label and role (the pages' contract), and what
the browser tests watch while they do it: the refresh requests, where a tab was sent."""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
from browser_site import Site
from playwright.sync_api import BrowserContext, Page, Request, Route, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

API = "/api/v1/auth/"
REFRESH_PATH = re.compile(r"/api/v1/auth/token/refresh/?$")
# The sign-in page's words for why a session ended (see /work/briefs/pages.md).
REASON_TEXT = {
    "token_reused": "Your session was ended because its refresh token was used twice",
    "signed_out": "You have signed out.",
    "session_ended": "Your session was ended",
    "account_deleted": "Your account has been deleted.",
}


@dataclass
class User:
    username: str
    email: str
    password: str
    display_name: str = "Browser Tester"

    @classmethod
    def fresh(cls) -> User:
        name = "b" + uuid.uuid4().hex[:10]
        return cls(name, f"{name}@example.com", f"{name} has a long passphrase")


def register_by_api(site: Site, user: User, keep_session: bool = False) -> None:
    """The account, made without the pages; the API's own session of it is ended at once
    (unless kept), so the browsers' sessions are the only ones."""
    with httpx.Client(base_url=site.url, timeout=30) as api:
        made = api.post(API + "register/", json={
            "username": user.username, "email": user.email, "password": user.password,
            "password2": user.password, "display_name": user.display_name})
        assert made.status_code == 201, made.text
        if not keep_session:
            ended = api.post(API + "logout/", json={"refresh_token": made.json()["refresh"]})
            assert ended.status_code == 205, ended.text


def claims(token: str) -> dict[str, Any]:
    """A token's payload, for its times (the test trusts the server that signed it)."""
    payload: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return payload


class Answers:
    """The bodies of the answers to the page's requests to `path` (a page that navigates
    away at once loses the body of a response it read, so each is read on its way in)."""

    def __init__(self, page: Page, path: str) -> None:
        self.bodies: list[tuple[int, Any]] = []
        page.route(re.compile(re.escape(API + path) + "?$"), self._record)

    def _record(self, route: Route) -> None:
        answer = route.fetch()
        self.bodies.append((answer.status, answer.json() if answer.body() else None))
        route.fulfill(response=answer)

    def only(self, status: int) -> dict[str, Any]:
        assert len(self.bodies) == 1 and self.bodies[0][0] == status, self.bodies
        body: dict[str, Any] = self.bodies[0][1]
        return body


def sign_in(page: Page, user: User, password: str | None = None) -> dict[str, Any]:
    """Signs in on the sign-in page and lands on the profile; the login/ answer's body."""
    answers = Answers(page, "login/")
    page.goto("/auth/signin")
    page.get_by_label("Username or email").fill(user.username)
    page.get_by_label("Password", exact=True).fill(password or user.password)
    page.get_by_role("button", name="Sign in").click()
    expect_profile(page, user)
    return answers.only(200)


def expect_profile(page: Page, user: User) -> None:
    """The profile page, showing this user: signed in, and the page's data loaded."""
    expect(page).to_have_url(re.compile(r"/auth/profile$"))
    expect(page.locator("#profile-username")).to_have_text(user.username)


def save_display_name(page: Page, name: str) -> None:
    """One authorised request from this tab (PATCH profile/), and its "Saved." seen."""
    form = page.locator("form").filter(has=page.get_by_label("Display name"))
    page.get_by_label("Display name").fill(name)
    form.get_by_role("button", name="Save").click()
    expect(form.get_by_role("status")).to_have_text("Saved.")


def open_tab(context: BrowserContext, path: str) -> Tab:
    """A new tab of the context (it joins the others' session over BroadcastChannel)."""
    tab = Tab(context.new_page())
    tab.page.goto(path)
    return tab


@dataclass
class Tab:
    """A page and every address its main frame was sent to (the sign-in page takes the
    #reason off the address bar once read, so the address alone would forget it)."""

    page: Page
    visited: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page.on("framenavigated", lambda frame: self.visited.append(frame.url)
                     if frame == self.page.main_frame else None)

    def click_unless_gone(self, button: str) -> None:
        """Clicks `button` (a request with this tab's token) unless the tab has already left
        the page: its refresh before exp may have been refused first, which is as good."""
        with contextlib.suppress(PlaywrightTimeoutError):
            self.page.get_by_role("button", name=button).click(timeout=2_000)

    def expect_signed_out(self, reason: str) -> None:
        """Sent to /auth/signin#reason=`reason`, which says why in words."""
        expect(self.page).to_have_url(re.compile(r"/auth/signin(#.*)?$"))
        expect(self.page.get_by_role("status")).to_contain_text(REASON_TEXT[reason])
        assert any(url.endswith(f"/auth/signin#reason={reason}") for url in self.visited), \
            self.visited


@dataclass
class Seen:
    at: float
    request: Request


class RefreshWatch:
    """Every POST token/refresh/ any page of a context sends, with when it was sent."""

    def __init__(self, context: BrowserContext) -> None:
        self.seen: list[Seen] = []
        context.on("request", self._on_request)

    def _on_request(self, request: Request) -> None:
        if request.method == "POST" and REFRESH_PATH.search(request.url):
            self.seen.append(Seen(time.time(), request))  # on time: see wait_until

    def between(self, start: float, end: float) -> list[Seen]:
        return [s for s in self.seen if start <= s.at < end]


def wait_until(page: Page, moment: float) -> None:
    """Waits until the wall-clock `moment` (a token's exp, say): time itself is the subject
    here, there is nothing in a page to wait on. Waited in Playwright, not time.sleep: the
    sync API hands over the browser's events (the requests watched) only while in a call."""
    page.wait_for_timeout(max(0.0, moment - time.time()) * 1000)
