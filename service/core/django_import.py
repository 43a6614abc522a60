"""`authsvc import-django`: Django's users become authsvc's, keeping their password hashes.

Rules, per Django row, in id order:
- a user imported before (same Django id) gets its display name brought up to date, and
  nothing else: never its password, token version, sessions, role or active flag;
- a Django id imported before whose account was deleted here is skipped
  (`deleted_in_authsvc`): an import never brings an account back;
- a new user is judged as a registration would be (NFKC; emails lower-cased and
  dot-atom), and skipped with a reason when authsvc cannot take it, never merged into
  another: `username_has_at`, `username_invalid`, `email_missing`, `email_invalid`,
  `email_conflict`, `username_conflict` (taken here, or by an earlier row of the same
  import), `role_unknown` (not a role of [auth]), `hash_unsupported` (a hash format
  authsvc cannot verify, or one costing more than any Django made), `id_invalid` (no
  positive 64-bit integer), `date_invalid` (a join date that is no time);
- it keeps its hash, active flag and join date; its email counts as verified (the old
  service let it sign in) unless `emails_verified` is off. Token version 0 (the version old
  simplejwt tokens are judged as, core/migration.py).
Each batch is written in one transaction; `dry_run` writes nothing and reports the same.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from service.core import django_hashes
from service.core.identity import (
    canonical_email,
    canonical_username,
    email_problem,
    username_problem,
)
from service.store.django_source import DjangoSource, DjangoUser
from service.store.user_import import Batch, BatchConflict, Existing, ImportTarget
from service.store.users import fold

DISPLAY_NAME_MAX = 150
ROLE_MAX = 64
_CONFLICT_RETRIES = 3


@dataclass
class ImportSummary:
    """What an import did (or, dry, would do)."""

    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    skipped_examples: dict[str, list[int]] = field(default_factory=dict)  # reason -> ids
    tokens_revoked: int = 0
    tokens_unreadable: int = 0

    def skip(self, reason: str, legacy_id: int) -> None:
        self.skipped[reason] += 1
        examples = self.skipped_examples.setdefault(reason, [])
        if len(examples) < 5:
            examples.append(legacy_id)

    def add(self, other: ImportSummary) -> None:
        self.imported += other.imported
        self.updated += other.updated
        self.unchanged += other.unchanged
        for reason, count in other.skipped.items():
            self.skipped[reason] += count
            examples = self.skipped_examples.setdefault(reason, [])
            examples.extend(other.skipped_examples[reason][:5 - len(examples)])

    def lines(self) -> list[str]:
        out = [f"imported: {self.imported}", f"updated: {self.updated}",
               f"unchanged: {self.unchanged}", f"skipped: {sum(self.skipped.values())}"]
        for reason, count in sorted(self.skipped.items()):
            ids = ", ".join(str(i) for i in self.skipped_examples.get(reason, []))
            out.append(f"  {reason}: {count} (Django ids {ids}{', ...' if count > 5 else ''})")
        out.append(f"old refresh tokens blacklisted: {self.tokens_revoked}")
        if self.tokens_unreadable:
            out.append(f"blacklist entries not read (no usable jti, user id or expiry): "
                       f"{self.tokens_unreadable}")
        return out


@dataclass(frozen=True)
class ImportOptions:
    known_roles: tuple[str, ...]
    default_role: str
    admin_role: str = "admin"
    emails_verified: bool = True
    dry_run: bool = False
    batch_size: int = 1000
    blacklist: bool = True


@dataclass
class _Run:
    """Names and emails claimed by earlier rows of this import (also when dry)."""

    usernames: set[str] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)


class DjangoImport:
    def __init__(self, source: DjangoSource, target: ImportTarget, options: ImportOptions,
                 clock: Callable[[], float] = time.time) -> None:
        self._source = source
        self._target = target
        self._o = options
        self._clock = clock

    async def run(self, progress: Callable[[int], None] = lambda n: None) -> ImportSummary:
        summary = ImportSummary()
        claimed = _Run()
        async for rows in self._source.batches(self._o.batch_size):
            await self._import_batch(rows, summary, claimed)
            progress(len(rows))
        if self._o.blacklist:
            summary.tokens_revoked, summary.tokens_unreadable = await self._import_blacklist()
        return summary

    async def _import_batch(self, rows: list[DjangoUser], summary: ImportSummary,
                            claimed: _Run) -> None:
        """Judge and write one batch; a batch a concurrent registration collided with is
        judged again on what now exists (its writes were rolled back whole)."""
        for attempt in range(_CONFLICT_RETRIES):
            existing = await self._target.existing(
                [r.id for r in rows], [fold(canonical_username(r.username)) for r in rows],
                [fold(canonical_email(r.email)) for r in rows])
            batch_summary, batch_claimed = ImportSummary(), _Run()
            batch = self._judge(rows, existing, batch_summary, claimed, batch_claimed)
            if self._o.dry_run:
                break
            try:
                await self._target.write(batch, dt.datetime.fromtimestamp(self._clock(), dt.UTC))
                break
            except BatchConflict:
                if attempt == _CONFLICT_RETRIES - 1:
                    raise
        summary.add(batch_summary)
        claimed.usernames |= batch_claimed.usernames
        claimed.emails |= batch_claimed.emails

    def _judge(self, rows: list[DjangoUser], existing: Existing, summary: ImportSummary,
               earlier: _Run, claimed: _Run) -> Batch:
        """The batch's writes; `earlier`: names taken by earlier batches of this run (read
        only), `claimed`: this batch's own, merged into them once it is written."""
        batch = Batch()
        for row in rows:
            display_name = (row.display_name or "").strip()[:DISPLAY_NAME_MAX]
            if row.problem == "id_invalid":
                summary.skip("id_invalid", row.id)
                continue
            if row.id in existing.imported:
                user_id, current = existing.imported[row.id]
                if display_name != current:
                    batch.display_names.append((user_id, display_name))
                    summary.updated += 1
                else:
                    summary.unchanged += 1
                continue
            if row.id in existing.deleted:
                summary.skip("deleted_in_authsvc", row.id)
                continue
            reason, values = (row.problem, {}) if row.problem else self._new_user(row,
                                                                                  display_name)
            if reason is None:
                username_norm, email_norm = values["username_norm"], values["email_norm"]
                if any(email_norm in taken
                       for taken in (existing.emails, earlier.emails, claimed.emails)):
                    reason = "email_conflict"
                elif any(username_norm in taken
                         for taken in (existing.usernames, earlier.usernames, claimed.usernames)):
                    reason = "username_conflict"
            if reason is not None:
                summary.skip(reason, row.id)
                continue
            claimed.usernames.add(str(values["username_norm"]))
            claimed.emails.add(str(values["email_norm"]))
            batch.new_users.append(values)
            summary.imported += 1
        return batch

    def _new_user(self, row: DjangoUser, display_name: str) -> tuple[str | None, dict[str, object]]:
        """The users row for a new Django user, or why authsvc cannot take it."""
        username = canonical_username(row.username)
        if "@" in fold(username):
            return "username_has_at", {}
        if username_problem(username):
            return "username_invalid", {}
        if not row.email.strip():
            return "email_missing", {}
        email = canonical_email(row.email)
        if email_problem(email):
            return "email_invalid", {}
        if not django_hashes.importable(row.password):
            return "hash_unsupported", {}
        role = row.role if row.role is not None else (
            self._o.admin_role if row.is_superuser else self._o.default_role)
        if role not in self._o.known_roles:
            return "role_unknown", {}
        joined = row.date_joined or dt.datetime.fromtimestamp(self._clock(), dt.UTC)
        now = dt.datetime.fromtimestamp(self._clock(), dt.UTC)
        return None, {
            "username": username, "username_norm": fold(username), "email": email,
            "email_norm": fold(email), "display_name": display_name, "role": role,
            "is_active": row.is_active, "password_hash": row.password, "token_version": 0,
            "password_changed_at": now, "date_joined": joined,
            "email_verified": self._o.emails_verified, "legacy_id": row.id}

    async def _import_blacklist(self) -> tuple[int, int]:
        """simplejwt's blacklist (unexpired entries), so a token revoked there stays revoked
        here; returns how many were not revoked here yet, and how many were unreadable."""
        revoked, unreadable = await self._source.revoked_tokens(self._clock())
        total = 0
        for start in range(0, len(revoked), self._o.batch_size):
            chunk = revoked[start:start + self._o.batch_size]
            already = await self._target.revoked_already([t.jti for t in chunk])
            fresh = [t for t in chunk if t.jti not in already]
            total += len(fresh)
            if fresh and not self._o.dry_run:
                await self._target.revoke_tokens([
                    {"jti": t.jti, "legacy_id": t.legacy_id, "sid": None, "revoked": True,
                     "expires_at": t.expires_at} for t in fresh])
        return total, unreadable
