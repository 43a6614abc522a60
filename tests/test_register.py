"""register/: the 201 body, roles, usernames, uniqueness, the password policy, field errors."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import closing
from typing import Any

import httpx
from api import API, REGISTER, USER, assert_field_errors, bearer, register
from support import user_row

from service.config import Settings


def post(client: httpx.Client, **overrides: Any) -> httpx.Response:
    """POST register/ with USER's fields, `overrides` replacing them (None values are sent)."""
    body = {**USER, **overrides}
    if "password" in overrides and "password2" not in overrides:
        body["password2"] = overrides["password"]
    return client.post(REGISTER, json=body)


# -- success ---------------------------------------------------------------------------------

def test_created_body_is_user_refresh_access(client: httpx.Client) -> None:
    """API.md #1: 201 `{user:{username,email,display_name}, refresh, access}`."""
    response = post(client)
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"user", "refresh", "access"}
    assert body["user"] == {"username": "alice", "email": "alice@example.com",
                            "display_name": "Alice"}
    assert all(isinstance(body[k], str) and body[k].count(".") == 2 for k in ("refresh", "access"))
    assert body["access"] != body["refresh"]


def test_created_response_is_not_cacheable(client: httpx.Client) -> None:
    """API.md "Every response that carries a token has Cache-Control: no-store"."""
    response = post(client)
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"].startswith("application/json")


def test_issued_access_token_opens_the_profile(client: httpx.Client) -> None:
    """API.md #1/#5: the access token returned by register/ authenticates the new user."""
    created = register(client)
    profile = client.get(API + "profile/", headers=bearer(created["access"]))
    assert profile.status_code == 200
    assert profile.json() == {"username": "alice", "email": "alice@example.com",
                              "display_name": "Alice", "role": "user"}


def test_path_without_trailing_slash_is_served(client: httpx.Client) -> None:
    """API.md base path: a request without the trailing slash is served the same, never 404."""
    response = client.post(REGISTER.rstrip("/"), json=USER)
    assert response.status_code == 201, response.text
    assert set(response.json()) == {"user", "refresh", "access"}


def test_display_name_and_role_are_optional(client: httpx.Client) -> None:
    """API.md "display_name and role are optional on register"; the default role is `user`."""
    body = {k: v for k, v in USER.items() if k != "display_name"}
    response = client.post(REGISTER, json=body)
    assert response.status_code == 201, response.text
    assert response.json()["user"] == {"username": "alice", "email": "alice@example.com",
                                       "display_name": ""}
    profile = client.get(API + "profile/", headers=bearer(response.json()["access"]))
    assert profile.status_code == 200 and profile.json()["role"] == "user"


def test_explicit_self_registrable_role_is_accepted(client: httpx.Client) -> None:
    """API.md: `role` may be one of the self-registrable roles (default `["user"]`)."""
    created = register(client, role="user")
    profile = client.get(API + "profile/", headers=bearer(created["access"]))
    assert profile.status_code == 200 and profile.json()["role"] == "user"


def test_configured_extra_role_is_registrable(settings: Settings, make_client: Any) -> None:
    """API.md [auth] self_register_roles: any role listed in config can be chosen at register."""
    client = make_client(settings.replace(auth={"self_register_roles": ("user", "editor")}))
    created = register(client, role="editor")
    profile = client.get(API + "profile/", headers=bearer(created["access"]))
    assert profile.status_code == 200 and profile.json()["role"] == "editor"


def test_display_name_of_150_characters_is_accepted(client: httpx.Client) -> None:
    """API.md: `display_name` is a string of 0-150 characters."""
    created = register(client, display_name="é" * 150)
    assert created["user"]["display_name"] == "é" * 150


def test_empty_display_name_is_accepted(client: httpx.Client) -> None:
    """API.md: `display_name` is a string of 0-150 characters (0 included)."""
    assert register(client, display_name="")["user"]["display_name"] == ""


# -- roles -----------------------------------------------------------------------------------

def test_role_outside_the_self_registrable_list_is_refused(client: httpx.Client) -> None:
    """API.md: a role not among the self-registrable ones is a 400 on `role`."""
    for role in ["moderator", "User", "superuser", "staff"]:
        assert_field_errors(post(client, role=role), "role")


def test_nobody_registers_as_admin(client: httpx.Client, settings: Settings) -> None:
    """API.md "Nobody can register as admin" (OWASP ASVS V4.1.3 least privilege / escalation)."""
    errors = assert_field_errors(post(client, role="admin"), only=False)
    assert set(errors) == {"role"}
    path = settings.database.url.removeprefix("sqlite:///")
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT count(*) FROM users").fetchone()[0] == 0


def test_admin_is_refused_even_next_to_other_allowed_roles(settings: Settings,
                                                           make_client: Any) -> None:
    """API.md "Nobody can register as admin", whatever else self_register_roles lists."""
    client = make_client(settings.replace(auth={"self_register_roles": ("user", "editor")}))
    assert_field_errors(post(client, role="admin"), "role")


def test_role_of_wrong_type_or_blank_is_refused(client: httpx.Client) -> None:
    """API.md: `role` is optional, but when sent it must be a self-registrable role name."""
    for role in [None, "", 7, ["user"]]:
        assert_field_errors(post(client, role=role), "role")


# -- usernames -------------------------------------------------------------------------------

def test_username_accepts_letters_of_any_script_digits_and_punctuation(
        client: httpx.Client) -> None:
    """API.md: usernames are 1-150 letters (any script), digits and `. _ - +`."""
    for i, username in enumerate(["José", "Дмитрий", "李雷", "أحمد", "देवनागरी", "Ωμέγα",
                                  "user_1.a-b+c", "007", "a", "b" * 150]):
        response = post(client, username=username, email=f"user{i}@example.com")
        assert response.status_code == 201, (username, response.text)
        assert response.json()["user"]["username"] == username


def test_username_outside_the_allowed_set_is_refused(client: httpx.Client) -> None:
    """API.md: usernames allow only letters, digits and `. _ - +` (no `@`), 1-150 characters."""
    for username in ["alice@example", "@", "al ice", "al!ce", "a/b", "a:b", "smile😀",
                     "tab\tin", "a" * 151, "＠alice", "a\u200bb"]:
        errors = assert_field_errors(post(client, username=username), only=False)
        assert set(errors) == {"username"}, username


def test_username_blank_null_or_not_a_string_is_refused(client: httpx.Client) -> None:
    """API.md: a username is 1-150 characters; anything else is a 400 on `username`."""
    for username in ["", "   ", None, 42, ["alice"]]:
        assert_field_errors(post(client, username=username), "username")


def test_missing_fields_are_each_reported(client: httpx.Client) -> None:
    """API.md Errors: 400 `{"<field>": [...]}` for every required field that is absent."""
    response = client.post(REGISTER, json={})
    assert_field_errors(response, "username", "email", "password", "password2")


def test_username_stays_within_150_characters_after_normalisation(client: httpx.Client) -> None:
    """API.md: usernames are 1-150 characters (the stored, NFKC-normalised form included)."""
    response = post(client, username="\ufb03" * 150)
    if response.status_code == 201:
        assert len(response.json()["user"]["username"]) <= 150
    else:
        assert_field_errors(response, "username")


# -- uniqueness after NFKC + case folding ----------------------------------------------------

def test_username_taken_after_nfkc_and_case_folding(client: httpx.Client) -> None:
    """API.md: usernames are unique after Unicode NFKC normalisation and case folding."""
    register(client)
    for username in ["alice", "Alice", "ALICE", "ａｌｉｃｅ", "ＡＬＩＣＥ", " alice "]:
        errors = assert_field_errors(post(client, username=username, email="other@example.com"),
                                     only=False)
        assert set(errors) == {"username"}, username


def test_canonically_equivalent_usernames_are_one_username(client: httpx.Client) -> None:
    """API.md: uniqueness after NFKC: composed and decomposed accents are the same name."""
    register(client, username="José", email="jose@example.com")
    errors = assert_field_errors(post(client, username="Jose\u0301", email="other@example.com"),
                                 only=False)
    assert set(errors) == {"username"}


def test_invisible_marks_do_not_make_a_second_alice(client: httpx.Client) -> None:
    """API.md: usernames are letters, digits and `. _ - +`; an invisible variation selector or
    combining grapheme joiner is none of these (OWASP ASVS V5.1 / UTS #39 spoofing)."""
    register(client)
    for i, username in enumerate(["alice\ufe0f", "alice\u034f"]):
        response = post(client, username=username, email=f"spoof{i}@example.com")
        assert_field_errors(response, "username")


def test_email_taken_after_nfkc_and_case_folding(client: httpx.Client) -> None:
    """API.md: emails are unique after Unicode NFKC normalisation and case folding."""
    register(client)
    for email in ["alice@example.com", "ALICE@EXAMPLE.COM", "Alice@Example.com",
                  "ａｌｉｃｅ@example.com"]:
        errors = assert_field_errors(post(client, username="alice2", email=email), only=False)
        assert set(errors) == {"email"}, email


def test_both_taken_are_reported_together(client: httpx.Client) -> None:
    """API.md Errors: a duplicate username and email are both reported, each on its field."""
    register(client)
    errors = assert_field_errors(post(client, username="ALICE", email="ALICE@example.com"),
                                 only=False)
    assert set(errors) == {"username", "email"}


def test_email_is_stored_lower_cased(client: httpx.Client, settings: Settings) -> None:
    """API.md "email is stored lower-cased"."""
    created = register(client, username="bob", email="Bob.Smith@Example.COM")
    assert created["user"]["email"] == "bob.smith@example.com"
    assert user_row(settings, "bob")["email"] == "bob.smith@example.com"


def test_fullwidth_username_is_stored_normalised(client: httpx.Client,
                                                 settings: Settings) -> None:
    """API.md: uniqueness is judged on the NFKC form; fullwidth input is stored as NFKC."""
    created = register(client, username="ｂｏｂ", email="bob@example.com")
    assert created["user"]["username"] == "bob"
    assert user_row(settings, "bob")["username_norm"] == "bob"


def test_concurrent_registrations_of_one_username_create_one_user(
        client: httpx.Client, settings: Settings) -> None:
    """API.md: uniqueness is enforced by a unique index: of racing registrations one wins,
    the rest get 400 on `username`, never a 500."""
    names = ["racer", "Racer", "RACER", "ｒａｃｅｒ", "rAcEr"]
    barrier = threading.Barrier(10)
    results: list[httpx.Response | BaseException] = [RuntimeError("not run")] * 10

    def attempt(i: int) -> None:
        body = {**USER, "username": names[i % len(names)], "email": f"racer{i}@example.com"}
        try:
            with httpx.Client(base_url=client.base_url, timeout=30) as own:
                barrier.wait(timeout=10)
                results[i] = own.post(REGISTER, json=body)
        except BaseException as exc:  # reported below, not lost in the thread
            results[i] = exc

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    responses = [r for r in results if isinstance(r, httpx.Response)]
    assert len(responses) == 10, results
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] + [400] * 9, [(r.status_code, r.text) for r in responses]
    for response in responses:
        if response.status_code == 400:
            assert_field_errors(response, "username")
    path = settings.database.url.removeprefix("sqlite:///")
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT count(*) FROM users").fetchone()[0] == 1


# -- passwords (NIST SP 800-63B 5.1.1.2) -----------------------------------------------------

def test_password_shorter_than_minimum_is_refused(client: httpx.Client) -> None:
    """API.md / NIST SP 800-63B 5.1.1.2: at least 8 characters."""
    assert_field_errors(post(client, password="q7#vLm2"), "password")


def test_password_of_exactly_minimum_length_is_accepted(client: httpx.Client) -> None:
    """API.md / NIST SP 800-63B 5.1.1.2: 8 characters are enough."""
    assert post(client, password="q7#vLm2x").status_code == 201


def test_minimum_length_is_configurable(settings: Settings, make_client: Any) -> None:
    """API.md [passwords] min_length (Rev. 4 asks 15 where the password is the only factor)."""
    client = make_client(settings.replace(passwords={"min_length": 15}))
    assert_field_errors(post(client, password="fourteen chars"), "password")
    assert post(client, password="fifteen chars!!").status_code == 201


def test_password_of_1024_characters_is_accepted(client: httpx.Client) -> None:
    """API.md / NIST SP 800-63B 5.1.1.2: at most 1024 (NIST: at least 64 must be allowed)."""
    assert post(client, password="x7" * 512).status_code == 201


def test_password_over_1024_characters_is_refused(client: httpx.Client) -> None:
    """API.md: passwords are at most 1024 characters."""
    errors = assert_field_errors(post(client, password="x7" * 512 + "y"), only=False)
    assert "password" in errors and set(errors) <= {"password", "password2"}


def test_common_password_is_refused(client: httpx.Client) -> None:
    """API.md / NIST SP 800-63B 5.1.1.2: not in a common-password list (case ignored)."""
    for password in ["password123", "PASSWORD123", "iloveyou", "qwerty123", "Letmein1"]:
        errors = assert_field_errors(post(client, password=password), only=False)
        assert set(errors) == {"password"}, password
        assert any("common" in m for m in errors["password"]), errors


def test_password_equal_to_username_is_refused(client: httpx.Client) -> None:
    """API.md / NIST SP 800-63B 5.1.1.2 (context-specific words): not equal to the username."""
    for password in ["alicealice", "AliceAlice", "ＡＬＩＣＥＡＬＩＣＥ"]:
        errors = assert_field_errors(post(client, username="alicealice", password=password),
                                     only=False)
        assert set(errors) == {"password"}, password


def test_password_equal_to_email_is_refused(client: httpx.Client) -> None:
    """API.md / NIST SP 800-63B 5.1.1.2 (context-specific words): not equal to the email."""
    for password in ["alice@example.com", "ALICE@Example.com"]:
        assert_field_errors(post(client, password=password), "password")


def test_no_composition_rules(client: httpx.Client) -> None:
    """API.md "No composition rules"; NIST SP 800-63B 5.1.1.2: spaces and Unicode accepted,
    each code point counted as one character."""
    for i, password in enumerate(["alllowercaseletters", "12345678909876", "        spaces  ",
                                  "пароль-без-правил", "🔑🔑🔑🔑🔑🔑🔑🔑"]):
        response = post(client, username=f"user{i}", email=f"user{i}@example.com",
                        password=password)
        assert response.status_code == 201, (password, response.text)


def test_seven_unicode_code_points_are_too_short(client: httpx.Client) -> None:
    """NIST SP 800-63B 5.1.1.2: length counts code points (7 emoji are 7, not 28 bytes)."""
    assert_field_errors(post(client, password="🔑" * 7), "password")


def test_password2_mismatch_is_refused(client: httpx.Client) -> None:
    """API.md "password2 must equal password": a 400 on `password2`."""
    errors = assert_field_errors(post(client, password="correct horse battery",
                               password2="correct horse battery "), only=False)
    assert set(errors) == {"password2"}


def test_password_blank_null_or_not_a_string_is_refused(client: httpx.Client) -> None:
    """API.md Errors: invalid input is a 400 on the field, never a 500."""
    for password in ["", None, 12345678, ["correct horse battery"]]:
        errors = assert_field_errors(post(client, password=password, password2=password),
                                     only=False)
        assert "password" in errors and set(errors) <= {"password", "password2"}, password


# -- display_name ----------------------------------------------------------------------------

def test_display_name_null_overlong_or_not_a_string_is_refused(client: httpx.Client) -> None:
    """API.md: `display_name` is a string of 0-150 characters (`null` is a 400)."""
    for display_name in [None, "x" * 151, 5, {"first": "Al"}]:
        errors = assert_field_errors(post(client, display_name=display_name), only=False)
        assert set(errors) == {"display_name"}, display_name


# -- field errors together -------------------------------------------------------------------

def test_input_errors_on_every_field_are_reported_together(client: httpx.Client) -> None:
    """API.md Errors (DRF shape): every invalid field is reported in one 400."""
    response = client.post(REGISTER, json={
        "username": "no spaces allowed", "email": "not-an-email", "password": "abc def ghi",
        "password2": "something else", "display_name": None, "role": None})
    assert_field_errors(response, "username", "email", "password2", "display_name", "role")


def test_policy_errors_are_reported_with_format_errors(client: httpx.Client) -> None:
    """API.md Errors (DRF shape): all field errors together, policy ones included."""
    response = post(client, username="bad@name", password="short", role="admin")
    assert_field_errors(response, "username", "password", "role")


def test_policy_errors_are_reported_together(client: httpx.Client) -> None:
    """API.md Errors (DRF shape): a taken username, a weak password and a refused role at once."""
    register(client)
    response = post(client, username="Alice", email="new@example.com", password="password123",
                    role="admin")
    assert_field_errors(response, "username", "password", "role")


# -- malformed requests ----------------------------------------------------------------------

def test_unparseable_or_non_object_body_is_a_400_detail(client: httpx.Client) -> None:
    """API.md Errors: an unparseable body is 400 `{"detail": "..."}`, never a 500."""
    for content in [b"", b"{", b"[]", b'"alice"', b"null", b"\xff\xfe"]:
        response = client.post(REGISTER, content=content,
                               headers={"Content-Type": "application/json"})
        assert response.status_code == 400, content
        body = response.json()
        assert set(body) == {"detail"} and isinstance(body["detail"], str) and body["detail"]


def test_non_json_body_is_a_415(client: httpx.Client) -> None:
    """API.md Errors: a body that is not JSON is 415 `{"detail": "..."}`."""
    response = client.post(REGISTER, data={"username": "alice"})
    assert response.status_code == 415
    assert set(response.json()) == {"detail"}
