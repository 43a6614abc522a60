"""One date format across the API: RFC 3339 in UTC with `Z` (http/render.py rfc3339)."""

from __future__ import annotations

import datetime as dt

from service.http.render import rfc3339


def test_unix_times_render_in_utc_with_z() -> None:
    assert rfc3339(2_000_000_000) == "2033-05-18T03:33:20Z"
    assert rfc3339(2_000_000_000.25) == "2033-05-18T03:33:20.250000Z"


def test_naive_datetimes_are_utc_and_aware_ones_are_converted() -> None:
    naive = dt.datetime(2026, 11, 28, 6, 10, 16, 123456)
    assert rfc3339(naive) == "2026-11-28T06:10:16.123456Z"
    paris = dt.datetime(2026, 11, 28, 7, 10, 16, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert rfc3339(paris) == "2026-11-28T06:10:16Z"
