# The one module that touches machine: builds the pole controller's pins, ADCs, UART and
# watchdog. On the Pico (sys.platform 'rp2') they are machine objects; on the unix port
# ('linux', the simulator and the tests) they are the fakes below, which a test or the
# simulator harness drives by hand. Everything else takes these objects as arguments.
#
# On 'linux' the simulator (watchpost/sim) passes the reset cause in $WATCHPOST_RESET_CAUSE;
# when its host-side watchdog is on, it names a FIFO in $WATCHPOST_WDT that a feed writes a
# byte to; $WATCHPOST_UART names the link UART (a pty the host keeps raw with VMIN=0,
# VTIME=0, so a read with nothing waiting returns at once); $WATCHPOST_CONTROL names a FIFO
# of line commands ("bell 1", "temp 75.0", ...) that set the fake pins and ADCs (both in
# simio.py, imported only then);
# $WATCHPOST_TELEMETRY_MS shortens the telemetry period for tests. Without them (the tests in
# tests/firmware) the board is all fakes driven by hand.

import sys

# Pico wiring, in one place. GPn numbers; ADC channels 0-2 are GP26-GP28, 4 the on-chip
# temperature sensor.
PINS = {
    "uart_id": 0,
    "uart_tx": 0,
    "uart_rx": 1,
    "bell": 2,  # button to GND, pull-up
    "door": 3,  # switch to GND while shut, pull-up: 1 = open
    "lamp": 15,  # "call received" lamp driver
    "buzzer": 14,
    "led": 25,  # on-board LED
    "adc_bell_loop": 0,  # GP26: bell loop through its end-of-line resistor
    "adc_supply": 1,  # GP27: supply through the divider
    "adc_temp": 4,  # on-chip sensor
}
BAUD = 115200
WDT_TIMEOUT_MS = 8000  # the RP2040 watchdog tops out at about 8.3 s
SUPPLY_DIVIDER = 122 / 22  # 100k over 22k
TELEMETRY_MS = 60000


class FakePin:
    # value() reads, value(v) drives, set(v) is the test's hand on the wire.
    def __init__(self, value=0):
        self._value = value

    def value(self, v=None):
        if v is None:
            return self._value
        self._value = 1 if v else 0
        return None

    def set(self, v):
        self._value = 1 if v else 0


class FakeADC:
    def __init__(self, raw=0):
        self._raw = raw

    def read_u16(self):
        return self._raw

    def set(self, raw):
        self._raw = int(raw) & 0xFFFF


class FakeUART:
    # In-memory UART: feed() queues bytes for read(), take() returns what was written.
    def __init__(self):
        self._rx = bytearray()
        self._tx = bytearray()

    def any(self):
        return len(self._rx)

    def read(self, n=-1):
        if not self._rx:
            return None
        if n < 0 or n >= len(self._rx):
            data = bytes(self._rx)
            self._rx = bytearray()
        else:
            data = bytes(self._rx[:n])
            self._rx = self._rx[n:]
        return data

    def write(self, data):
        self._tx.extend(data)
        return len(data)

    def feed(self, data):
        self._rx.extend(data)

    def take(self):
        data = bytes(self._tx)
        self._tx = bytearray()
        return data


class FakeWDT:
    def __init__(self, timeout=WDT_TIMEOUT_MS):
        self.timeout = timeout
        self.feeds = 0

    def feed(self):
        self.feeds += 1


class FifoWDT:
    # The simulator's watchdog: each feed writes one byte to the FIFO the host watches.
    def __init__(self, path):
        self._fifo = open(path, "wb")
        self.feeds = 0

    def feed(self):
        self.feeds += 1
        # The write reaches the host at once; flush() on a FIFO raises EINVAL on the unix port.
        self._fifo.write(b"\x01")


class Board:
    # What the controller needs from the hardware. reset_cause: "power-on", "watchdog",
    # "soft" or "unknown". reset(): restart the controller (never returns on the Pico).
    # control: an object whose poll() main.py calls every loop (SimControl), or None.
    def __init__(self, bell, door, lamp, buzzer, bell_loop, supply, temp, uart, wdt, reset_cause, reset):
        self.bell = bell
        self.door = door
        self.lamp = lamp
        self.buzzer = buzzer
        self.bell_loop = bell_loop
        self.supply = supply
        self.temp = temp
        self.uart = uart
        self.wdt = wdt
        self.reset_cause = reset_cause
        self.reset = reset
        self.control = None
        self.telemetry_ms = TELEMETRY_MS


def _sim_reset():
    # The simulator harness restarts the interpreter when it exits.
    raise SystemExit(3)


def fake_board(reset_cause="power-on"):
    # Idle values: button released (high), door shut (low), loop mid-scale, 25 degC, 12 V.
    return Board(
        bell=FakePin(1),
        door=FakePin(0),
        lamp=FakePin(0),
        buzzer=FakePin(0),
        bell_loop=FakeADC(32768),
        supply=FakeADC(int(12.0 / SUPPLY_DIVIDER / 3.3 * 65535)),
        temp=FakeADC(int((0.706 - (25 - 27) * 0.001721) / 3.3 * 65535)),
        uart=FakeUART(),
        wdt=FakeWDT(),
        reset_cause=reset_cause,
        reset=_sim_reset,
    )


def pico_board():
    import machine

    Pin = machine.Pin
    causes = {machine.PWRON_RESET: "power-on", machine.WDT_RESET: "watchdog"}
    return Board(
        bell=Pin(PINS["bell"], Pin.IN, Pin.PULL_UP),
        door=Pin(PINS["door"], Pin.IN, Pin.PULL_UP),
        lamp=Pin(PINS["lamp"], Pin.OUT, value=0),
        buzzer=Pin(PINS["buzzer"], Pin.OUT, value=0),
        bell_loop=machine.ADC(PINS["adc_bell_loop"]),
        supply=machine.ADC(PINS["adc_supply"]),
        temp=machine.ADC(PINS["adc_temp"]),
        uart=machine.UART(
            PINS["uart_id"], BAUD, tx=Pin(PINS["uart_tx"]), rx=Pin(PINS["uart_rx"]), rxbuf=1024
        ),
        wdt=machine.WDT(timeout=WDT_TIMEOUT_MS),
        reset_cause=causes.get(machine.reset_cause(), "unknown"),
        reset=machine.reset,
    )


def sim_board():
    import os

    board = fake_board(os.getenv("WATCHPOST_RESET_CAUSE") or "power-on")
    wdt = os.getenv("WATCHPOST_WDT")
    if wdt:
        board.wdt = FifoWDT(wdt)
    uart = os.getenv("WATCHPOST_UART")
    control = os.getenv("WATCHPOST_CONTROL")
    if uart or control:
        import simio  # only the simulator pays for it in RAM

        if uart:
            board.uart = simio.PtyUART(uart)
        if control:
            board.control = simio.SimControl(control, board)
    telemetry_ms = os.getenv("WATCHPOST_TELEMETRY_MS")
    if telemetry_ms:
        board.telemetry_ms = int(telemetry_ms)
    return board


def board():
    if sys.platform == "rp2":
        return pico_board()
    return sim_board()
