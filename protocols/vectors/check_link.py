# Runs the golden vectors in link.json against link.py, on CPython or MicroPython.
#
#   micropython protocols/vectors/check_link.py [DIR_WITH_link.py] [VECTORS.json]
#   python      protocols/vectors/check_link.py
#   mpremote run protocols/vectors/check_link.py   (with link.py and link.json on the board)
#
# Prints one line per failing case and a closing "N passed, M failed" line; exit status 1 on
# any failure. Same MicroPython subset as link.py: no f-strings, no typing, no pathlib.

import json
import os
import sys
from binascii import unhexlify


def _unhex(text: str) -> bytes:
    return unhexlify(text) if text else b""


def _describe(item: object) -> dict:  # type: ignore[type-arg]
    # Turns a decoder output into the same shape as an expectation in link.json.
    reason = getattr(item, "reason", None)
    if reason is not None:
        return {"error": reason}
    frame = item
    return {
        "frame": {
            "type": frame.frame_type,  # type: ignore[attr-defined]
            "seq": frame.seq,  # type: ignore[attr-defined]
            "ack": frame.ack,  # type: ignore[attr-defined]
            "payload": "".join("%02x" % b for b in frame.payload),  # type: ignore[attr-defined]
        }
    }


def run(link: object, vectors: dict) -> list:  # type: ignore[type-arg]
    # Returns (case name, problem) pairs; empty when every case passes.
    failures = []
    count = 0
    for case in vectors["crc16"]:
        count += 1
        data = _unhex(case["input"])
        for fn_name in ("crc16", "crc16_py"):
            got = getattr(link, fn_name)(data)
            if got != case["crc"]:
                failures.append(("crc16 " + case["input"][:16], "%s gave %d" % (fn_name, got)))
    for case in vectors["cobs"]:
        count += 1
        decoded = _unhex(case["decoded"])
        encoded = _unhex(case["encoded"])
        if link.cobs_encode(decoded) != encoded:  # type: ignore[attr-defined]
            failures.append(("cobs " + case["decoded"][:16], "encode differs"))
        if link.cobs_decode(encoded) != decoded:  # type: ignore[attr-defined]
            failures.append(("cobs " + case["decoded"][:16], "decode differs"))
    for case in vectors["frames"]:
        count += 1
        wire = _unhex(case["wire"])
        step = case.get("chunks") or len(wire) or 1
        decoder = link.FrameDecoder()  # type: ignore[attr-defined]
        got = []
        i = 0
        while i < len(wire):
            got.extend(decoder.feed(wire[i : i + step]))
            i += step
        described = [_describe(item) for item in got]
        if described != case["expect"]:
            failures.append((case["name"], "decoded %r" % (described,)))
        if case.get("encode"):
            want = case["expect"][0]["frame"]
            encoded = link.encode_frame(  # type: ignore[attr-defined]
                want["type"], want["seq"], want["ack"], _unhex(want["payload"])
            )
            if encoded != wire:
                failures.append((case["name"], "encode_frame gave %s" % encoded.hex()))
    return [count, failures]


def _exists(path: str) -> bool:
    try:
        os.stat(path)
    except OSError:
        return False
    return True


def main(argv: list) -> int:  # type: ignore[type-arg]
    try:
        here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
    except NameError:  # `mpremote run` executes the text without a file name
        here = "."
    # In the repository link.py is one level up; on a board it sits beside this file.
    default_dir = here if _exists(here + "/link.py") else here + "/.."
    link_dir = argv[1] if len(argv) > 1 else default_dir
    vectors_path = argv[2] if len(argv) > 2 else here + "/link.json"
    sys.path.insert(0, link_dir)
    import link  # type: ignore[import-not-found]  # the very file the firmware deploys

    with open(vectors_path) as f:
        vectors = json.load(f)
    count, failures = run(link, vectors)
    for name, problem in failures:
        print("FAIL %s: %s" % (name, problem))
    failed_cases = len({name for name, _ in failures})
    print("%d passed, %d failed" % (count - failed_cases, failed_cases))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
