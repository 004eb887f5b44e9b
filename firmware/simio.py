# The simulator's I/O for hal.sim_board (the unix port only; the Pico never imports this):
# the link UART on a pty and the control FIFO that sets the fake pins and ADCs. The host
# side is watchpost/sim (console.py creates both devices, controls.py writes commands).

import hal


class PtyUART:
    # The simulator's link UART: a pty the host keeps in raw mode with VMIN=0, VTIME=0. The
    # unix port reads a file until it has n bytes or a read returns 0, and such a pty returns
    # 0 when nothing waits, so read() never stalls the loop. Same API as machine.UART.
    # Reads go through one buffer: an empty read() would allocate ~64 bytes every loop.
    def __init__(self, path, rxbuf=256):
        self._port = open(path, "r+b")
        self._buf = bytearray(rxbuf)

    def read(self):
        n = self._port.readinto(self._buf)
        return bytes(self._buf[:n]) if n else None

    def write(self, data):
        # The host relay drains the pty's other end at once, so this does not block.
        return self._port.write(data)


def temp_raw(celsius):
    # Inverse of sensors.temp_c: the ADC(4) reading of the RP2040 sensor at celsius.
    return int((0.706 - (celsius - 27) * 0.001721) / 3.3 * 65535)


def supply_raw(volts):
    return int(volts / hal.SUPPLY_DIVIDER / 3.3 * 65535)


class SimControl:
    # The simulator's hand on the wires: line commands from a FIFO the host holds open for
    # writing, polled once per loop. poll(0) says whether a line waits; the host writes each
    # command in one write() shorter than PIPE_BUF, so a whole line is there and readline()
    # cannot block. Commands (the host side is watchpost/sim/controls.py):
    #   bell 1|0      button pressed / released      door 1|0       cabinet open / shut
    #   loop <raw>    bell-loop ADC (65535 cut, 0 shorted, 32768 normal)
    #   temp <degC>   supply <volts>                 hang           stop feeding the watchdog
    #   outputs <n>   write "<n> <lamp> <buzzer>" to /dev/outputs: what a probe on the
    #                 output pins would read (the HIL rig's witness of the lamp)
    def __init__(self, path, board):
        import select

        self._fifo = open(path, "rb")
        self._poll = select.poll()
        self._poll.register(self._fifo, select.POLLIN)
        self._board = board
        self.applied = 0
        self.rejected = 0

    def _waiting(self):
        # ipoll() reuses its result; poll() would allocate a list every loop.
        for _ in self._poll.ipoll(0):
            return True
        return False

    def poll(self):
        while self._waiting():
            line = self._fifo.readline()
            if not line:
                return
            try:
                self.apply(line.split())
                self.applied += 1
            except Exception:
                self.rejected += 1
                print("sim-control: refused %r" % line)

    def apply(self, words):
        b = self._board
        name = words[0]
        if name == b"hang":
            # A firmware bug that spins without feeding the watchdog; sleeping spares the CPU.
            import time

            while True:
                time.sleep_ms(50)
        value = words[1]
        if name == b"outputs":
            # One short write; the host rereads until the line is whole and names its ask.
            with open("/dev/outputs", "w") as f:
                f.write("%d %d %d\n" % (int(value), b.lamp.value(), b.buzzer.value()))
        elif name == b"bell":
            b.bell.set(0 if int(value) else 1)  # button to GND: pressed reads 0
        elif name == b"door":
            b.door.set(1 if int(value) else 0)  # switch opens with the door: open reads 1
        elif name == b"loop":
            b.bell_loop.set(int(value))
        elif name == b"temp":
            b.temp.set(temp_raw(float(value)))
        elif name == b"supply":
            b.supply.set(supply_raw(float(value)))
        else:
            raise ValueError(name)
