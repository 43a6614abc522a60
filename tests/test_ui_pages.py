"""The hosted pages' contract with their tests and readers, checked without a browser: the
label and button texts the browser tests find controls by, every input labelled, every module
and name a script imports there, and the sessions page's device names. Their behaviour is
tested in a real browser (test_browser_*.py)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from service.http import ui

# page -> the labels and buttons a person (and a browser test) finds it by, in Tab order.
CONTRACT = {
    "signin": (["Username or email", "Password", "Authentication code"],
               ["Sign in", "Use a passkey", "Verify", "Use a passkey",
                "Use a recovery code", "Start over"]),
    "signup": (["Username", "Email", "Display name", "Password", "Repeat password"],
               ["Create account"]),
    "forgot": (["Email"], ["Send reset link"]),
    "reset": (["New password", "Repeat new password"], ["Set new password"]),
    "verify": (["Email"], ["Send a new link"]),
    "not-me": ([], ["End every session"]),
    "profile": (["Display name", "Current password", "New password", "Repeat new password",
                 "Code from the app", "New name", "Name of the new passkey",
                 "Password to delete the account", "I understand this cannot be undone",
                 "Your password", "Authentication or recovery code"],
                ["Sign out", "Sign out everywhere", "Save", "Change password", "Set up",
                 "Regenerate recovery codes", "Turn off", "Yes, turn it off", "Keep it on",
                 "Turn on", "Cancel set-up", "I have stored them", "Save name",
                 "Cancel renaming", "Yes, delete it", "Keep it", "Add a passkey",
                 "I have stored them", "Remove password", "Yes, remove it", "Keep my password",
                 "Delete account", "Continue", "Use a passkey", "Use a code instead",
                 "Cancel"]),
    "sessions": ([], ["Sign out", "Sign out everywhere"]),
}


class Page(HTMLParser):
    """The parts of a page the contract is about."""

    def __init__(self) -> None:
        super().__init__()
        self.labels: dict[str, str] = {}  # for -> text
        self.inputs: list[str] = []  # ids, in document order
        self.buttons: list[str] = []
        self.h1 = 0
        self.main = 0
        self.lang: str | None = None
        self._open: tuple[str, str] | None = None  # ("label", for) or ("button", "")
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html":
            self.lang = a.get("lang")
        self.h1 += tag == "h1"
        self.main += tag == "main"
        if tag == "input":
            self.inputs.append(a.get("id") or "")
        if tag in ("label", "button"):
            self._open, self._text = (tag, a.get("for") or ""), ""

    def handle_data(self, data: str) -> None:
        if self._open:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if self._open and tag == self._open[0]:
            text = " ".join(self._text.split())
            if tag == "label":
                self.labels[self._open[1]] = text
            else:
                self.buttons.append(text)
            self._open = None


def parse(page: str) -> Page:
    parsed = Page()
    parsed.feed((ui.PAGES_DIR / f"{page}.html").read_text())
    return parsed


def test_the_contract_names_every_page() -> None:
    assert set(CONTRACT) == set(ui.PAGES)


@pytest.mark.parametrize("page", ui.PAGES)
def test_every_input_is_labelled_with_the_contract_s_words(page: str) -> None:
    parsed = parse(page)
    labels, buttons = CONTRACT[page]
    assert parsed.lang == "en" and parsed.h1 == 1 and parsed.main == 1
    assert all(parsed.inputs), "an input without an id cannot have a <label for>"
    assert [parsed.labels.get(i) for i in parsed.inputs] == labels
    assert parsed.buttons == buttons


def exported(script: str) -> set[str]:
    return set(re.findall(r"^export (?:async )?(?:function|const|let|class) (\w+)", script, re.M))


def test_every_module_and_name_a_page_script_imports_is_there() -> None:
    """A page whose script imports a file that is not served, or a name its module does not
    export, does nothing at all: the browser refuses the whole module graph."""
    scripts = sorted(ui.PAGES_DIR.glob("*.js"))
    assert scripts
    for script in scripts:
        imports = re.findall(r'import\s*\{([^}]*)\}\s*from\s*"([^"]+)"', script.read_text())
        assert imports or script.name == "user-agent.js", f"{script.name} imports nothing"
        for names, target in imports:
            if target == ui.CLIENT_PATH:
                continue
            name = target.removeprefix("./")
            assert ui.ASSET_NAME.fullmatch(name), f"{script.name} imports {target}"
            assert (ui.PAGES_DIR / name).is_file(), f"{script.name} imports {target}"
            missing = {n.strip() for n in names.split(",") if n.strip()} \
                - exported((ui.PAGES_DIR / name).read_text())
            assert not missing, f"{script.name} imports {missing} from {name}, which has none"


NAMES = {
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0":
        "Firefox 128 on Windows",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36": "Chrome 131 on Linux",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0": "Edge 131 on Windows",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.5 Mobile/15E148 Safari/604.1": "Safari 17 on iPhone",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15": "Safari 17 on macOS",
    "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36": "Chrome 131 on Android",
    "curl/8.5.0": "curl/8.5.0",
    "": "Unknown device",
}


@pytest.mark.timeout(30)
def test_the_sessions_page_names_devices_as_people_do() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("no node on PATH")
    module = (ui.PAGES_DIR / "user-agent.js").as_uri()
    program = (f"const {{ deviceName }} = await import({json.dumps(module)});"
               f"console.log(JSON.stringify({json.dumps(list(NAMES))}.map(deviceName)));")
    run = subprocess.run([node, "--input-type=module", "-e", program], capture_output=True,
                         text=True, timeout=20, check=True)
    assert dict(zip(NAMES, json.loads(run.stdout), strict=True)) == NAMES
