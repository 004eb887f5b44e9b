"""Release-signing keys on disk: an Ed25519 private key (PEM, PKCS#8, mode 0600) and its public
key (PEM), which the fleet and every node pin (`[ota] trusted_keys`). Signing happens on a
release engineer's machine, ideally offline; nodes never hold a private key of this kind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from protocols import ota


class KeyFileError(ValueError):
    """A key file is missing, unsafe or not an Ed25519 key; the message names the file."""


def generate(directory: Path, name: str) -> tuple[Path, Path, str]:
    """Write `<name>.key` (0600) and `<name>.pub`; refuse to overwrite either. Returns both
    paths and the key id."""
    private_path = directory / f"{name}.key"
    public_path = directory / f"{name}.pub"
    for path in (private_path, public_path):
        if path.exists():
            raise KeyFileError(f"{path} exists; a signing key is never overwritten")
    directory.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    # Created with 0600 from the start: there is no moment when others could read it.
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    public_path.write_bytes(ota.public_key_pem(key.public_key()))
    return private_path, public_path, ota.key_id(key.public_key())


def load_private(path: Path) -> Ed25519PrivateKey:
    try:
        mode = path.stat().st_mode
        pem = path.read_bytes()
    except OSError as error:
        raise KeyFileError(f"{path}: {error.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"{path} is readable by others (mode {stat.S_IMODE(mode):04o}); chmod 600 it first"
        )
    try:
        key = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as error:
        raise KeyFileError(f"{path}: not an unencrypted PEM private key ({error})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: a {type(key).__name__}, not an Ed25519 key")
    return key


def load_public(path: Path) -> Ed25519PublicKey:
    try:
        pem = path.read_bytes()
    except OSError as error:
        raise KeyFileError(f"{path}: {error.strerror}") from None
    try:
        return ota.parse_public_key(pem)
    except ValueError as error:
        raise KeyFileError(f"{path}: {error}") from None
