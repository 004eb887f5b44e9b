"""The node's own Ed25519 key: made on first start, kept on the node's flash (mode 0600).

It signs technicians' site visits (protocols.visits); its public half goes out in every birth
so the fleet can verify them. Losing the file means a new key, which the fleet sees as a new
`node_key` in the next birth.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

KEY_FILE = "node.key"


def load_or_create_node_key(state_dir: Path) -> Ed25519PrivateKey:
    path = state_dir / KEY_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raw = b""
    if len(raw) == 32:
        return Ed25519PrivateKey.from_private_bytes(raw)
    if raw:
        # A torn write or a stray file: keep it for a post-mortem, start a fresh identity.
        os.replace(path, path.with_suffix(".corrupt"))
    key = Ed25519PrivateKey.generate()
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return key
