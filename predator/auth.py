"""API keys with roles. Keys are stored as SHA-256 hashes; the plain key is shown once, when made.

Roles are ordered: ``viewer`` (search, copilot) < ``analyst`` (+ feedback, cases) < ``admin``
(+ ingest, training, reload). A key grants its own role and every role below it.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path


class Role(IntEnum):
    viewer = 1
    analyst = 2
    admin = 3


class AuthError(Exception):
    """A missing, unknown or insufficient key. ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyRing:
    """Hashed keys -> principals. Loaded from a JSON file ``{hash: {"name":..., "role":...}}``."""

    def __init__(self, entries: dict[str, Principal]):
        self._entries = entries

    @classmethod
    def load(cls, path: Path) -> "KeyRing":
        raw = json.loads(path.read_text()) if path.exists() else {}
        return cls({h: Principal(e["name"], Role[e["role"]]) for h, e in raw.items()})

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {h: {"name": p.name, "role": p.role.name} for h, p in self._entries.items()}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(body, indent=1))
        os.chmod(tmp, 0o600)
        tmp.replace(path)

    def add(self, key: str, name: str, role: Role) -> None:
        self._entries[hash_key(key)] = Principal(name, role)

    def __len__(self) -> int:
        return len(self._entries)

    def authenticate(self, key: str | None) -> Principal:
        if not key:
            raise AuthError(401, "missing API key: send 'Authorization: Bearer <key>'")
        digest = hash_key(key)
        for known, principal in self._entries.items():
            if hmac.compare_digest(known, digest):
                return principal
        raise AuthError(401, "unknown API key")

    def authorize(self, key: str | None, needed: Role) -> Principal:
        principal = self.authenticate(key)
        if principal.role < needed:
            raise AuthError(403, f"role '{principal.role.name}' may not do this; needs '{needed.name}'")
        return principal


def bearer_token(header: str | None) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header, or None."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def ensure_local_keys(keys_path: Path, secrets_dir: Path) -> dict[str, str]:
    """Make one key per role on first run (plain keys into ``secrets_dir``, mode 0600); return them.

    Later runs return the same keys. The key ring itself holds only hashes.
    """
    secrets_dir.mkdir(parents=True, exist_ok=True)
    ring = KeyRing.load(keys_path)
    plain: dict[str, str] = {}
    for role in Role:
        key_file = secrets_dir / f"{role.name}.key"
        if key_file.exists():
            key = key_file.read_text().strip()
        else:
            key = f"pa_{role.name}_{secrets.token_urlsafe(24)}"
            key_file.write_text(key + "\n")
            os.chmod(key_file, 0o600)
        ring.add(key, f"local-{role.name}", role)
        plain[role.name] = key
    ring.save(keys_path)
    return plain
