"""Write protocols/vectors/link.json: golden serial-link frames and their expected decode.

The vectors are built here *without* protocols.link: CRC-16/CCITT-FALSE from the standard
library (binascii.crc_hqx with init 0xFFFF) and COBS from the byte-wise algorithm of
Cheshire & Baker's paper, so they check the codec instead of echoing it. Expected errors are
stated here from the frame layout, with the reason next to each.

    python scripts/make_link_vectors.py          # rewrite the file
    python scripts/make_link_vectors.py --check  # fail if the file is not what this writes
"""

from __future__ import annotations

import binascii
import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "protocols" / "vectors" / "link.json"

VERSION = 1
HELLO, HEARTBEAT, ACK, EVENT, TELEMETRY, COMMAND, RESULT = 0x01, 0x02, 0x03, 0x10, 0x11, 0x20, 0x21


def ref_cobs_encode(data: bytes) -> bytes:
    # Byte-wise: keep a pointer to the pending code byte, close the block at a zero or
    # after 254 data bytes; a final block of exactly 254 bytes needs no closing code.
    out = bytearray([0])
    code_at, code = 0, 1
    for i, byte in enumerate(data):
        if byte == 0:
            out[code_at] = code
            code_at, code = len(out), 1
            out.append(0)
            continue
        out.append(byte)
        code += 1
        if code == 0xFF:
            out[code_at] = code
            code_at, code = len(out), 1
            if i + 1 < len(data):
                out.append(0)
    if code_at < len(out):
        out[code_at] = code
    return bytes(out)


def crc(data: bytes) -> int:
    return binascii.crc_hqx(data, 0xFFFF)


def body(ftype: int, seq: int, ack: int, payload: bytes, *, version: int = VERSION) -> bytes:
    head = bytes([version, ftype, seq, ack, len(payload)]) + payload
    return head + crc(head).to_bytes(2, "big")


def wire(ftype: int, seq: int, ack: int, payload: bytes = b"", **kw: int) -> bytes:
    return b"\x00" + ref_cobs_encode(body(ftype, seq, ack, payload, **kw)) + b"\x00"


def frame(ftype: int, seq: int, ack: int, payload: bytes = b"") -> dict[str, Any]:
    return {"frame": {"type": ftype, "seq": seq, "ack": ack, "payload": payload.hex()}}


def error(reason: str) -> dict[str, Any]:
    return {"error": reason}


def vectors() -> dict[str, Any]:
    hello = b'{"fw":"0.1.0","rst":"power-on"}'
    bell = b'{"k":"bell","st":"pressed","id":"bell-1","t":1734}'
    binary = bytes([0x00, 0x01, 0x00, 0x02, 0x00])
    biggest = bytes((i % 255) + 1 for i in range(240))  # 240 bytes, no zero: MAX_PAYLOAD
    good_hello = wire(HELLO, 1, 0, hello)

    # One body with a bad CRC: the CRC of other bytes.
    bad_crc_body = bytes([VERSION, EVENT, 9, 2, len(bell)]) + bell
    bad_crc_body += (crc(bad_crc_body) ^ 0x0001).to_bytes(2, "big")

    # A frame whose CRC ends in 0x00: its COBS form ends in a block holding only that zero.
    # Cut that last block off (a reboot at that instant) and what remains has a CRC that
    # still checks (CRC-16/CCITT-FALSE has no final XOR, so this happens for 1 frame in 256);
    # only the length byte tells it is short.
    base = b'{"k":"bell","st":"pressed","id":"bell-1","t":'
    tail = next(bytes([b]) for b in range(256) if body(EVENT, 3, 1, base + bytes([b]))[-1] == 0)
    zero_crc = body(EVENT, 3, 1, base + tail)
    zero_crc_cobs = ref_cobs_encode(zero_crc)
    assert zero_crc_cobs.endswith(b"\x01")

    long_head = bytes([VERSION, EVENT, 1, 0, 3]) + b"abcd"
    long_body = long_head + crc(long_head).to_bytes(2, "big")

    frames: list[dict[str, Any]] = [
        {"name": "hello", "wire": good_hello.hex(), "encode": True, "expect": [frame(HELLO, 1, 0, hello)]},
        {
            "name": "heartbeat, zero seq and ack make COBS blocks",
            "wire": wire(HEARTBEAT, 0, 0).hex(),
            "encode": True,
            "expect": [frame(HEARTBEAT, 0, 0)],
        },
        {
            "name": "pure ack of 255",
            "wire": wire(ACK, 0, 255).hex(),
            "encode": True,
            "expect": [frame(ACK, 0, 255)],
        },
        {
            "name": "bell event",
            "wire": wire(EVENT, 200, 3, bell).hex(),
            "encode": True,
            "expect": [frame(EVENT, 200, 3, bell)],
        },
        {
            "name": "payload with zeros at both ends",
            "wire": wire(TELEMETRY, 7, 7, binary).hex(),
            "encode": True,
            "expect": [frame(TELEMETRY, 7, 7, binary)],
        },
        {
            "name": "largest payload",
            "wire": wire(COMMAND, 255, 1, biggest).hex(),
            "encode": True,
            "expect": [frame(COMMAND, 255, 1, biggest)],
        },
        {
            "name": "result fed one byte at a time",
            "wire": wire(RESULT, 4, 4, b'{"ok":true}').hex(),
            "chunks": 1,
            "encode": True,
            "expect": [frame(RESULT, 4, 4, b'{"ok":true}')],
        },
        {
            "name": "two frames in one read",
            "wire": (wire(EVENT, 1, 0, bell) + wire(HEARTBEAT, 0, 5)).hex(),
            "expect": [frame(EVENT, 1, 0, bell), frame(HEARTBEAT, 0, 5)],
        },
        {
            "name": "two frames split across reads of 7 bytes",
            "wire": (wire(EVENT, 1, 0, bell) + wire(HEARTBEAT, 0, 5)).hex(),
            "chunks": 7,
            "expect": [frame(EVENT, 1, 0, bell), frame(HEARTBEAT, 0, 5)],
        },
        {"name": "delimiters only", "wire": "00000000", "expect": []},
        {
            # 0x13 says "18 data bytes follow" but only 2 do before the next delimiter.
            "name": "noise before a frame is cut off by its leading delimiter",
            "wire": ("1337ff" + good_hello.hex()),
            "expect": [error("bad-cobs"), frame(HELLO, 1, 0, hello)],
        },
        {
            # The controller rebooted after sending 10 bytes of a frame; its next frame's
            # leading 0x00 ends the fragment, whose first code byte promises more than 9 bytes.
            "name": "reboot mid-frame",
            "wire": (good_hello[:11] + good_hello).hex(),
            "expect": [error("bad-cobs"), frame(HELLO, 1, 0, hello)],
        },
        {
            "name": "bad CRC",
            "wire": ("00" + ref_cobs_encode(bad_crc_body).hex() + "00"),
            "expect": [error("bad-crc")],
        },
        {
            "name": "bad CRC does not hide the next frame",
            "wire": ("00" + ref_cobs_encode(bad_crc_body).hex() + "00" + good_hello.hex()),
            "expect": [error("bad-crc"), frame(HELLO, 1, 0, hello)],
        },
        {
            "name": "frame cut where its CRC still checks is refused by its length",
            "wire": ("00" + zero_crc_cobs[:-1].hex() + "00"),
            "expect": [error("truncated")],
        },
        {
            # One payload byte more than the length byte says (CRC computed over all of it).
            "name": "payload longer than its length byte",
            "wire": "00" + ref_cobs_encode(long_body).hex() + "00",
            "expect": [error("bad-length")],
        },
        {
            # Valid COBS, but 3 bytes of body: a frame needs 5 header + 2 CRC.
            "name": "truncated body",
            "wire": "00" + ref_cobs_encode(bytes([VERSION, EVENT, 1])).hex() + "00",
            "expect": [error("truncated")],
        },
        {
            # A zero code byte cannot occur inside a block: 0x00 is the delimiter. Here the
            # block 03 01 02 ends one byte early: 0x03 promises 2 bytes, 1 follows.
            "name": "COBS block running past the delimiter",
            "wire": "00030100",
            "expect": [error("bad-cobs")],
        },
        {
            "name": "unknown link version",
            "wire": wire(HELLO, 1, 0, hello, version=2).hex(),
            "expect": [error("unknown-version")],
        },
        {"name": "unknown frame type", "wire": wire(0x7F, 1, 0).hex(), "expect": [error("unknown-type")]},
        {
            # 300 bytes without a delimiter exceed the 248-byte maximum: reported once,
            # skipped to the next delimiter, then decoding goes on.
            "name": "oversized run then a good frame",
            "wire": ("00" + "41" * 300 + good_hello.hex()),
            "chunks": 64,
            "expect": [error("oversized"), frame(HELLO, 1, 0, hello)],
        },
    ]
    return {
        "about": (
            "Golden vectors for protocols/link.py, written by scripts/make_link_vectors.py from an "
            "independent reference. Bytes are hex. 'chunks' feeds the wire in reads of that many "
            "bytes (default: one read). 'encode' means encode_frame() must produce exactly 'wire'."
        ),
        "crc16": [
            {"input": b"123456789".hex(), "crc": 0x29B1},  # the published check value
            {"input": "", "crc": 0xFFFF},
            {"input": bytes(range(256)).hex(), "crc": crc(bytes(range(256)))},
        ],
        "cobs": [
            # The examples of the COBS paper and its common summaries.
            {"decoded": "", "encoded": "01"},
            {"decoded": "00", "encoded": "0101"},
            {"decoded": "0000", "encoded": "010101"},
            {"decoded": "11220033", "encoded": "03112202 33".replace(" ", "")},
            {"decoded": "11223344", "encoded": "0511223344"},
            {"decoded": "11000000", "encoded": "02110101 01".replace(" ", "")},
            {"decoded": bytes(range(1, 255)).hex(), "encoded": "ff" + bytes(range(1, 255)).hex()},
            {"decoded": bytes(range(0, 255)).hex(), "encoded": "01ff" + bytes(range(1, 255)).hex()},
            {"decoded": bytes(range(1, 256)).hex(), "encoded": "ff" + bytes(range(1, 255)).hex() + "02ff"},
            {
                "decoded": bytes(range(2, 256)).hex() + "00",
                "encoded": "ff" + bytes(range(2, 256)).hex() + "0101",
            },
        ],
        "frames": frames,
    }


def render() -> str:
    return json.dumps(vectors(), indent=1) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    # The reference encoder must agree with the published COBS examples it is checked by.
    for case in vectors()["cobs"]:
        assert ref_cobs_encode(bytes.fromhex(case["decoded"])).hex() == case["encoded"], case
    if "--check" in argv:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is stale: run python scripts/make_link_vectors.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
