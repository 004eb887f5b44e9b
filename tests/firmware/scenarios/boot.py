# firmware/main.py's loop on the unix port with the fake board of hal.py and a fake clock:
# the edge's heartbeat waits in the UART, the loop runs, and one JSON line reports what the
# controller wrote (its HELLO) and how often the watchdog was fed. main.run prints the ready
# line first.
#
#   micropython boot.py FIRMWARE_DIR PROTOCOLS_DIR

import json
import sys

sys.path.insert(0, sys.argv[2])
sys.path.insert(0, sys.argv[1])

import hal
import link
import main

LOOPS = 50
clock = [1000]


def ticks_ms():
    clock[0] += 5
    return clock[0]


board = hal.board()  # sys.platform is 'linux' here: the fakes
board.uart.feed(link.encode_frame(link.T_HEARTBEAT, 0, 0))
main.run(board, loops=LOOPS, ticks_ms=ticks_ms, sleep_ms=lambda ms: None)
hello = None
for item in link.FrameDecoder().feed(board.uart.take()):
    if isinstance(item, link.Frame) and item.frame_type == link.T_HELLO:
        hello = json.loads(item.payload)
print(json.dumps({"hello": hello, "loops": LOOPS, "wdt_feeds": board.wdt.feeds}))
