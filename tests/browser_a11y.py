"""Accessibility checks that a browser can answer, not an eye: labels, keyboard order, how a
field error is tied to its input and announced."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Locator, Page

# How a control is named in a failure message: its id, else its name, else its text.
DESCRIBE = "(el) => `${el.tagName.toLowerCase()}:${el.id || el.name || el.textContent.trim()}`"


def unlabelled_inputs(page: Page) -> list[str]:
    """Inputs (hidden forms' too) without a <label> of their own."""
    found: list[str] = page.evaluate(f"""() => {{
        const describe = {DESCRIBE};
        return [...document.querySelectorAll("input, select, textarea")]
            .filter((el) => el.type !== "hidden" && !(el.labels && el.labels.length))
            .map(describe);
    }}""")
    return found


def positive_tabindex(page: Page) -> list[str]:
    found: list[str] = page.evaluate(f"""() => {{
        const describe = {DESCRIBE};
        return [...document.querySelectorAll("[tabindex]")].filter((el) => el.tabIndex > 0)
            .map(describe);
    }}""")
    return found


def tabbable_in_dom_order(page: Page) -> list[str]:
    """Every control a keyboard should reach, as the document orders them."""
    found: list[str] = page.evaluate(f"""() => {{
        const describe = {DESCRIBE};
        const shown = (el) => el.getClientRects().length > 0
            && getComputedStyle(el).visibility !== "hidden" && !el.closest("[inert]");
        return [...document.querySelectorAll(
                "a[href], button, input, select, textarea, [tabindex]")]
            .filter((el) => el.tabIndex >= 0 && !el.disabled && shown(el))
            .map(describe);
    }}""")
    return found


def tab_order(page: Page, stops: int) -> list[str]:
    """Where focus goes on `stops` presses of Tab from the top of the page."""
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    seen: list[str] = []
    for _ in range(stops):
        page.keyboard.press("Tab")
        seen.append(page.evaluate(f"() => ({DESCRIBE})(document.activeElement)"))
    return seen


def field_error(field: Locator) -> dict[str, Any]:
    """How an input's error is presented: aria-invalid, the texts its aria-describedby points
    at, whether one of those is inside a live region, and whether the input has focus."""
    facts: dict[str, Any] = field.evaluate("""(input) => {
        const described = (input.getAttribute("aria-describedby") || "").split(/\\s+/)
            .filter(Boolean).map((id) => document.getElementById(id)).filter(Boolean);
        const live = "[role=alert], [role=status], [aria-live]:not([aria-live=off])";
        const shown = described.filter((el) => el.getClientRects().length > 0);
        return {
            invalid: input.getAttribute("aria-invalid"),
            texts: shown.map((el) => el.textContent.trim()),
            announced: shown.some((el) => el.textContent.trim() && el.closest(live)),
            focused: document.activeElement === input,
        };
    }""")
    return facts
