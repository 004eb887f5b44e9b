# The firmware's parts on their own, on the MicroPython unix port: conversions, debouncing,
# thresholds, the lamp, the largest payloads and what an idle tick allocates. Prints one JSON
# line per check:
# {"check": name, ...figures}; tests/firmware/test_parts.py asserts on them.
#
#   micropython units.py FIRMWARE_DIR PROTOCOLS_DIR

import gc
import json
import sys

sys.path.insert(0, sys.argv[2])
sys.path.insert(0, sys.argv[1])

import hal
import link
import sensors
from bell import Bell, BellCircuit
from controller import Controller
from door import Door
from lamp import Lamp
from sensors import Sensors, Threshold


def emit(check, **figures):
    figures["check"] = check
    print(json.dumps(figures))


def drive(part, pin, script, t, step=5):
    # script: [(level, ms), ...]; polls every `step` ms; returns [(t, event), ...].
    events = []
    for level, ms in script:
        pin.set(level)
        end = t + ms
        while t < end:
            t += step
            ev = part.poll(t & 0x3FFFFFFF)
            if ev is not None:
                events.append([t, ev])
    return events, t


# -- conversions
emit(
    "conversions",
    temp_27=sensors.temp_c(round(0.706 / 3.3 * 65535)),
    temp_raw_0=sensors.temp_c(0),
    supply_12=sensors.supply_v(round(12.0 / (122 / 22) / 3.3 * 65535), 122 / 22),
    volts_full=sensors.adc_volts(65535),
)

# -- bell: bounce on press and release, then a long hold, across the tick wrap
pin = hal.FakePin(1)
t0 = (1 << 30) - 500  # the press straddles the 2**30 wrap of ticks_ms()
bell = Bell(pin, debounce_ms=30, stuck_after_ms=20000, now=t0)
bounce_press = [(0, 2), (1, 3), (0, 1), (1, 4), (0, 2), (1, 1), (0, 400)]
bounce_release = [(1, 3), (0, 2), (1, 1), (0, 3), (1, 500)]
events, t = drive(bell, pin, bounce_press + bounce_release, t0)
hold_script = [(0, 1), (1, 2), (0, 25000)]
hold_script.extend(bounce_release)
events2, t = drive(bell, pin, hold_script, t)
glitch, t = drive(bell, pin, [(0, 20), (1, 500)], t)  # shorter than the debounce
held_pin = hal.FakePin(0)  # held down while the controller boots
held = Bell(held_pin, now=0)
at_boot, _ = drive(held, held_pin, [(0, 100)], 0)
emit(
    "bell",
    at_boot=[e for _, e in at_boot],
    events=[e for _, e in events],
    hold=[e for _, e in events2],
    stuck_after=(events2[1][0] - events2[0][0]) if len(events2) > 1 else None,
    glitch=[e for _, e in glitch],
    presses=bell.presses,
)

# -- bell circuit: noise at a band edge, open, short, back to normal
adc = hal.FakeADC(32768)
circuit = BellCircuit(
    adc, short_below=8000, open_above=56000, hysteresis=1500, confirm=3, sample_ms=100, now=0
)
seen = []


def hold(raw, ms, t):
    # raw: a reading, or a function of the tick; polls every 10 ms; returns the new tick.
    end = t + ms
    while t < end:
        t += 10
        adc.set(raw(t) if callable(raw) else raw)
        ev = circuit.poll(t)
        if ev is not None:
            seen.append(ev)
    return t


def noisy_edge(t):
    # Alternates sample by sample either side of open_above: never 3 agreeing in a row.
    return 56500 if (t // 100) % 2 else 55500


t = hold(32768, 1000, 0)
t = hold(noisy_edge, 3000, t)
noise = list(seen)
t = hold(65000, 1000, t)
t = hold(55000, 1000, t)  # inside the band, but not by the hysteresis margin: still open
still_open = circuit.state
t = hold(32768, 1000, t)
t = hold(2000, 1000, t)
t = hold(9000, 1000, t)  # above short_below but within the margin: still short
still_short = circuit.state
t = hold(32768, 1000, t)
emit("circuit", noise=noise, events=seen, still_open=still_open, still_short=still_short)

# -- door
pin = hal.FakePin(0)
door = Door(pin, debounce_ms=50, open_level=1, now=0)
events, t = drive(door, pin, [(1, 3), (0, 2), (1, 300), (0, 5), (1, 5), (0, 300)], 0)
emit("door", events=[e for _, e in events], openings=door.openings)

# -- thresholds with hysteresis, one event per crossing
hot = Threshold(70.0, 5.0, True, "high")
temps = [25, 69.9, 70.0, 71, 69, 66, 65.1, 70.5, 65.0, 64, 70]
low = Threshold(10.5, 0.5, False, "low")
volts = [12, 10.6, 10.5, 10.4, 10.9, 10.99, 11.0, 12]
emit(
    "thresholds",
    temp=[hot.update(v) for v in temps],
    supply=[low.update(v) for v in volts],
)

# -- sensors sample on their period, events from ADC readings
temp_adc = hal.FakeADC(round((0.706 - (25 - 27) * 0.001721) / 3.3 * 65535))
supply_adc = hal.FakeADC(round(12.0 / (122 / 22) / 3.3 * 65535))
s = Sensors(temp_adc, supply_adc, divider_ratio=122 / 22, sample_ms=1000, now=0)
samples = [s.sample(0), s.sample(500), s.sample(1000)]
temp_adc.set(round((0.706 - (75 - 27) * 0.001721) / 3.3 * 65535))
supply_adc.set(round(10.0 / (122 / 22) / 3.3 * 65535))
s.sample(2000)
emit(
    "sensors",
    samples=samples,
    temp_c=s.temp_c,
    supply_v=s.supply_v,
    temp_event=s.temp_event,
    supply_event=s.supply_event,
)

# -- lamp, with and without a duration
lamp_pin = hal.FakePin(0)
buzzer = hal.FakePin(0)
lamp = Lamp(lamp_pin, buzzer)
lamp.on(now=1000, seconds=2, buzz=True)
lit = [lamp_pin.value(), buzzer.value(), lamp.lit]
off_early = lamp.tick(2999)
off = lamp.tick(3000)
after = [lamp_pin.value(), buzzer.value()]
lamp.on(now=0)
kept = [lamp.tick(10**6), lamp_pin.value(), buzzer.value()]
emit("lamp", lit=lit, off_early=off_early, off=off, after=after, kept=kept)

# -- the largest payloads fit a frame even with every counter large
b = hal.fake_board()
c = Controller(
    session=link.LinkSession(0),
    decoder=link.FrameDecoder(),
    bell=Bell(b.bell),
    circuit=BellCircuit(b.bell_loop),
    door=Door(b.door),
    sensors=Sensors(b.temp, b.supply),
    lamp=Lamp(b.lamp, b.buzzer),
    now=0,
    reset_cause="watchdog",
)
big = 999999999  # nine digits: far beyond a pole's lifetime at one frame a second
for name in (
    "sent",
    "retransmits",
    "duplicates",
    "delivered",
    "dropped_telemetry",
    "dropped_events",
    "link_downs",
):
    setattr(c.session, name, big)
for reason in link.ERROR_REASONS:
    c.decoder.error_counts[reason] = big
for name in ("presses", "commands", "unknown_commands", "bad_commands", "exceptions"):
    setattr(c, name, big)
c._up_s = big
c.sensors.temp_c = -40.25
c.sensors.supply_v = 15.5
t = (1 << 30) - 1
tel = [c.telemetry_payload(t), c.counters_payload(t)]
c.session.peer_up = True
c.session._queue = []
c._on_command(b'{"cmd":"status","id":"%s"}' % ("x" * 32), t)
c._on_command(b'{"cmd":"self-test","id":"%s"}' % ("x" * 32), t)
c._on_command(b'{"cmd":"%s","id":"%s"}' % ("z" * 200, "x" * 32), t)
sizes = [len(item.payload) for item in c.session._queue]
emit(
    "payload_sizes",
    telemetry=[len(p) for p in tel],
    results=sizes,
    max=link.MAX_PAYLOAD,
    parses=[json.loads(p)["k"] for p in tel] + [json.loads(item.payload)["ok"] for item in c.session._queue],
)

# -- allocation of an idle tick: the controller's own polling builds nothing per tick

b = hal.fake_board()
c = Controller(
    session=link.LinkSession(0),
    decoder=link.FrameDecoder(),
    bell=Bell(b.bell),
    circuit=BellCircuit(b.bell_loop),
    door=Door(b.door),
    sensors=Sensors(b.temp, b.supply),
    lamp=Lamp(b.lamp, b.buzzer),
    now=0,
)
for now in range(10, 2010, 10):  # past boot: the HELLO is queued, telemetry not yet due
    c.tick(now)


def allocated(ticks, poll):
    # Average bytes allocated per 10 ms tick, the collector held off meanwhile.
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    for i in range(ticks):
        now = 2010 + i * 10
        c.tick(now)
        if poll:
            c.pending_output(now)
    after = gc.mem_alloc()
    gc.enable()
    return (after - before) / ticks


emit("allocation", tick=allocated(1000, False), tick_and_link_poll=allocated(1000, True))
