"""keys.py names every Redis key the service writes. Deployed data lives under these names:
this is the one place a test writes them out by hand, byte for byte; the other tests use the
builders."""

from __future__ import annotations

import hashlib
import re
import typing
from pathlib import Path

import pytest

from service.store.keys import Family, RedisKeys

KEYS = RedisKeys("auth:")


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize("built, written", [
    (KEYS.user(7), "auth:user:7"),
    (KEYS.session("abc"), "auth:session:abc"),
    (KEYS.user_sessions(7), "auth:user_sessions:7"),
    (KEYS.blacklist("j1"), "auth:blacklist:j1"),
    (KEYS.reset("tok"), f"auth:reset:{sha256('tok')}"),
    (KEYS.link("verify", "tok"), f"auth:verify:{sha256('tok')}"),
    (KEYS.link("notme", "tok"), f"auth:notme:{sha256('tok')}"),
    (KEYS.rate("login", "ip:10.0.0.1"), f"auth:rl:login:{sha256('ip:10.0.0.1')[:32]}"),
    (KEYS.lock("id:alice"), f"auth:lock:{sha256('id:alice')[:32]}"),
    (KEYS.hashing(7), "auth:hashing:7"),
    (KEYS.mails("alice@example.com"), f"auth:mails:{sha256('alice@example.com')[:32]}"),
])
def test_every_key_family_keeps_its_deployed_name(built: str, written: str) -> None:
    assert built == written


def test_a_family_pattern_matches_its_keys_only_even_under_a_glob_like_prefix() -> None:
    assert KEYS.every("user") == "auth:user:*"  # not auth:user_sessions:*
    assert RedisKeys("a*[b]?\\:").every("rl") == "a\\*\\[b\\]\\?\\\\:rl:*"


def test_the_readme_key_schema_lists_every_family_and_no_other() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Redis key schema", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `auth:(\w+):", section, flags=re.MULTILINE))
    assert listed == set(typing.get_args(Family))
