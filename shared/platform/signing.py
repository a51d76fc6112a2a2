"""The Ed25519 key that signs the chain checkpoints of the event logs; the keys that check them.

The private key lives in ``<data_dir>/secrets/audit-ed25519.key`` (PKCS#8 PEM, mode 0600), created
the first time it is needed; its public key is written next to it as ``audit-ed25519.pub``
(SubjectPublicKeyInfo PEM), so ``openssl pkey -pubin -in audit-ed25519.pub`` reads it too. A key is
named by its *key id*: the first 16 hex digits of SHA-256 over the raw 32-byte public key. Every
checkpoint records the key id it was signed with.

Rotation (``rotate_signing_key``): the current public key is kept as ``audit-ed25519-<key id>.pub``,
a new key pair takes the place of the old one and the old private key is removed. New checkpoints
carry the new key id; old checkpoints still verify, because the verifier loads every
``audit-ed25519*.pub`` in the directory and picks the key by id. A verifier on another machine needs
only those public files, never the private key. Checkpointer processes read the key file again at
every round, so they sign with the new key without a restart.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

log = logging.getLogger(__name__)

KEY_FILE_NAME = "audit-ed25519.key"
PUBLIC_KEY_GLOB = "audit-ed25519*.pub"


def key_id_of(public_key: Ed25519PublicKey) -> str:
    """The key id: the first 16 hex digits of SHA-256 over the raw public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class SigningKey:
    """A private Ed25519 key with its key id."""

    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The public half."""
        return self.private_key.public_key()

    @property
    def key_id(self) -> str:
        """The key id of the public half."""
        return key_id_of(self.public_key)

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        return self.private_key.sign(message)


def generate_signing_key() -> SigningKey:
    """A new random key (not stored anywhere)."""
    return SigningKey(Ed25519PrivateKey.generate())


def public_key_path(key_path: Path) -> Path:
    """Where the public key of the private key at ``key_path`` is kept."""
    return key_path.with_suffix(".pub")


def _private_pem(key: SigningKey) -> bytes:
    return key.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_pem(public_key: Ed25519PublicKey) -> bytes:
    """The public key as SubjectPublicKeyInfo PEM."""
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _write_private_tmp(directory: Path, content: bytes) -> str:
    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=".audit-key-")
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, content)
        os.fsync(fd)
    finally:
        os.close(fd)
    return tmp_name


def _write_public(path: Path, public_key: Ed25519PublicKey) -> None:
    # Replace atomically: a verifier never reads half a key.
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".audit-pub-")
    try:
        os.fchmod(fd, 0o644)
        os.write(fd, public_pem(public_key))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp_name, path)


def load_signing_key(path: Path) -> SigningKey:
    """Read the private key at ``path`` (and write its public key next to it when missing)."""
    if path.stat().st_mode & 0o077:
        raise PermissionError(f"signing key {path} is readable by others; chmod 600 it")
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 private key")
    key = SigningKey(loaded)
    public = public_key_path(path)
    if not public.exists():
        _write_public(public, key.public_key)
    return key


def load_or_create_signing_key(path: Path) -> SigningKey:
    """The key at ``path``, created (mode 0600, with its public key) the first time."""
    if path.exists():
        return load_signing_key(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp_name = _write_private_tmp(path.parent, _private_pem(generate_signing_key()))
    try:
        # Two processes starting at once agree on one key: the first link wins, the other
        # process reads the winner's key.
        with contextlib.suppress(FileExistsError):
            os.link(tmp_name, path)
    finally:
        os.unlink(tmp_name)
    key = load_signing_key(path)
    log.info("audit signing key ready", extra={"key_id": key.key_id})
    return key


def rotate_signing_key(path: Path) -> SigningKey:
    """Replace the key at ``path`` by a new one; keep the old public key for verification."""
    old = load_signing_key(path)
    _write_public(path.parent / f"audit-ed25519-{old.key_id}.pub", old.public_key)
    new = generate_signing_key()
    tmp_name = _write_private_tmp(path.parent, _private_pem(new))
    os.replace(tmp_name, path)
    _write_public(public_key_path(path), new.public_key)
    log.info("audit signing key rotated", extra={"old_key_id": old.key_id, "key_id": new.key_id})
    return new


def load_public_keys(directory: Path) -> dict[str, Ed25519PublicKey]:
    """Every audit public key in ``directory`` (current and rotated out), by key id."""
    keys: dict[str, Ed25519PublicKey] = {}
    if not directory.is_dir():
        return keys
    for path in sorted(directory.glob(PUBLIC_KEY_GLOB)):
        loaded = serialization.load_pem_public_key(path.read_bytes())
        if not isinstance(loaded, Ed25519PublicKey):
            raise ValueError(f"{path} does not hold an Ed25519 public key")
        # The id comes from the key itself, not from the file name, which anyone could change.
        keys[key_id_of(loaded)] = loaded
    return keys


def signature_valid(public_key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` is ``public_key``'s signature of ``message``."""
    try:
        public_key.verify(signature, message)
    except InvalidSignature:
        return False
    return True
