# Pole controller logic: polls the bell, bell loop, door and sensors (bell.py, door.py,
# sensors.py), drives the lamp (lamp.py), and talks to the edge node through link.py's
# LinkSession and FrameDecoder. No I/O of its own: main.py moves bytes between the UART and
# on_bytes() / pending_output(), and every method takes the millisecond tick `now`.
#
# Payloads are compact JSON (at most link.MAX_PAYLOAD = 240 bytes). `t` is always the
# controller's millisecond tick (wraps at 2**30, like ticks_ms()) at which the thing
# happened; the edge maps it to wall time with the `t` of frames it receives live.
#
# controller -> edge
# frame     class      payload
# HELLO     ALARM      {"fw":"0.1.0","rst":"power-on","t":5}
#                      first sequenced frame after boot; rst: power-on|watchdog|soft|unknown
# EVENT     ALARM      {"k":"bell","st":"pressed","id":"bell-1","n":1,"t":12345}
#                      n = presses in this alarm, t = the first of them (see folding below)
# EVENT     EVENT      {"k":"bell","st":"stuck"|"stuck-cleared","id":"bell-1","t":..}
# EVENT     EVENT      {"k":"circuit","st":"open"|"short"|"normal","raw":61234,"t":..}
# EVENT     EVENT      {"k":"door","st":"open"|"closed","t":..}
# EVENT     EVENT      {"k":"temp","st":"high"|"normal","c":71.3,"t":..}
# EVENT     EVENT      {"k":"supply","st":"low"|"normal","v":10.41,"t":..}
# TELEMETRY TELEMETRY  {"k":"tel","up":3600,"c":25.0,"v":12.00,"heap":40000,"loop":"normal",
#                       "in":[0,0,0,0],"bp":3,"q":0,"t":..}
#                      every telemetry_ms, followed by the counters frame below.
#                      up: s since boot; c/v: degC / supply V (last sample); heap:
#                      gc.mem_free(); loop: bell circuit state; in: [bell down, bell stuck,
#                      door open, lamp lit]; bp: bell presses since boot; q: link backlog
# TELEMETRY TELEMETRY  {"k":"cnt","ln":[40,2,0,5,0,0,1],"fe":[0,0,0,0,2,0,0],"cm":[5,1,1],
#                       "exc":0,"t":..}
#                      ln: link [sent, retransmits, duplicates, delivered, dropped
#                      telemetry, dropped events, link downs]; fe: decoder error counts, one
#                      per reason in link.ERROR_REASONS order (truncated, oversized, bad-cobs,
#                      ... as that tuple says); cm: [commands, unknown commands, bad
#                      commands]; exc: exceptions caught (a handler raised, loop went on)
# RESULT    EVENT      {"cmd":"lamp","ok":true,"lamp":1,"buzz":0,"id":"c-7","t":..}
#                      {"cmd":"self-test","ok":true,"loop":"normal","raw":32768,"c":25.0,
#                       "v":12.00,"stuck":0,"t":..}
#                      {"cmd":"status","ok":true,"fw":"0.1.0","rst":"power-on","up":..,
#                       "loop":..,"in":[..],"c":..,"v":..,"heap":..,"bp":..,"peer":1,"q":0,
#                       "exc":0,"t":..}   fields as in telemetry; peer: link up; q: backlog.
#                       (Link, decoder and command counters are in telemetry: 240 bytes.)
#                      {"cmd":"ping"|"reboot","ok":true,"t":..}
#                      {"cmd":"frob","ok":false,"err":"unknown-command","t":..}
#                      {"ok":false,"err":"bad-command","t":..}  (cmd echoed when known)
#                      {"ok":false,"err":"internal","t":..}  a handler raised (counted, exc)
#                      "id" is echoed when the command carried an int or a string of at
#                      most 32 characters (longer ids are not echoed: 240 bytes).
#
# edge -> controller (COMMAND frames)
#   {"cmd":"lamp","on":true,"s":30,"buzz":false,"id":"c-7"}   s: seconds lit (0..86400),
#                                                             0 = until told off
#   {"cmd":"self-test"}  {"cmd":"status"}  {"cmd":"ping"}
#   {"cmd":"reboot"}     answered, then reset once the link has nothing left to deliver
#                        (the result and any alarm are acked) or after reboot_grace_ms
#
# Bell alarms and folding: a press is sent at once as a CLASS_ALARM EVENT unless the
# previous bell alarm is not yet acknowledged by the edge; presses arriving meanwhile are
# counted, and when that alarm is acked one more alarm carries them all (n = how many,
# t = the first). So the link queue holds at most one bell alarm however often the button is
# pressed while the link is down, and the sum of n over delivered alarms equals the presses.
# "Acknowledged" is read from the session's public counters: one frame is in flight at a
# time (sent - acked is 0 or 1), and ALARM-class frames leave the queue first, in order, so
# an alarm queued now is acked when `acked` reaches (frames in flight or ALARM-queued ahead
# of it) + 1 beyond its present value.
#
# Nothing a handler raises stops the loop: tick() and on_bytes() catch Exception, count it
# (exc) and remember where (error_where).

import gc
import json

import link
from link import ticks_diff
from version import FIRMWARE_VERSION

import bell as _bell

MAX_LAMP_S = 86400  # a lamp duration beyond a day is a mistake (and ticks wrap in ~6 days)

_TRUE = b"true"
_FALSE = b"false"


def _flag(v):
    return 1 if v else 0


def _id_suffix(cid):
    # ,"id":... for a command id worth echoing: an int, or a short string.
    if type(cid) is int:
        return b',"id":%d' % cid
    if type(cid) is str and len(cid) <= 32:
        return b',"id":' + json.dumps(cid).encode()
    return b""


class Controller:
    def __init__(
        self,
        *,
        session,
        decoder,
        bell,
        circuit,
        door,
        sensors,
        lamp,
        now,
        reset_cause="unknown",
        reset=None,
        bell_id="bell-1",
        telemetry_ms=60000,
        reboot_grace_ms=5000,
        mem_free=gc.mem_free,
    ):
        self.session = session
        self.decoder = decoder
        self.bell = bell
        self.circuit = circuit
        self.door = door
        self.sensors = sensors
        self.lamp = lamp
        self.reset_cause = reset_cause
        self._reset = reset
        self.bell_id = bell_id
        self.telemetry_ms = telemetry_ms
        self.reboot_grace_ms = reboot_grace_ms
        self._mem_free = mem_free
        self._up_s = 0  # uptime in whole seconds, counted so it never wraps
        self._up_mark = now
        self._telemetry_at = now
        self._reboot_at = now
        self._rebooting = False
        # Counters (telemetry).
        self.presses = 0
        self.alarms = 0
        self.commands = 0
        self.unknown_commands = 0
        self.bad_commands = 0
        self.exceptions = 0
        self.error_where = ""
        # Alarm bookkeeping, in session.acked units (see the comment block above).
        self._alarm_target = session.acked
        self._bell_target = session.acked
        self._folded = 0
        self._folded_t = 0
        self._send_alarm(
            link.T_HELLO,
            b'{"fw":"%s","rst":"%s","t":%d}' % (FIRMWARE_VERSION, reset_cause, now),
        )

    # -- outgoing

    def _send_alarm(self, frame_type, payload):
        session = self.session
        acked = session.acked
        if self._alarm_target - acked > 0:
            target = self._alarm_target + 1  # right behind the last alarm not yet acked
        else:
            # No alarm waits, so ours is the next frame taken: acked once `acked` has passed
            # every frame sent so far (the one in flight, if any) and then ours.
            target = session.sent + 1
        session.send(frame_type, payload, link.CLASS_ALARM)
        self._alarm_target = target
        return target

    def _event(self, payload):
        self.session.send(link.T_EVENT, payload, link.CLASS_EVENT)

    def _result(self, payload):
        self.session.send(link.T_RESULT, payload, link.CLASS_EVENT)

    def bell_alarm_pending(self):
        return self._bell_target - self.session.acked > 0

    def _send_bell(self, n, t):
        self.alarms += 1
        self._bell_target = self._send_alarm(
            link.T_EVENT,
            b'{"k":"bell","st":"pressed","id":"%s","n":%d,"t":%d}' % (self.bell_id, n, t),
        )

    def _caught(self, where):
        self.exceptions += 1
        self.error_where = where

    # -- inputs

    def _uptime(self, now):
        while ticks_diff(now, self._up_mark) >= 1000:
            self._up_s += 1
            self._up_mark = (self._up_mark + 1000) & 0x3FFFFFFF
        return self._up_s

    def tick(self, now):
        self._uptime(now)
        try:
            self._poll_bell(now)
        except Exception:
            self._caught("bell")
        try:
            ev = self.circuit.poll(now)
            if ev is not None:
                self._event(b'{"k":"circuit","st":"%s","raw":%d,"t":%d}' % (ev, self.circuit.raw, now))
        except Exception:
            self._caught("circuit")
        try:
            ev = self.door.poll(now)
            if ev is not None:
                self._event(b'{"k":"door","st":"%s","t":%d}' % (ev, self.door.changed_at))
        except Exception:
            self._caught("door")
        try:
            self._poll_sensors(now)
        except Exception:
            self._caught("sensors")
        try:
            self.lamp.tick(now)
            if ticks_diff(now, self._telemetry_at) >= self.telemetry_ms:
                self._telemetry_at = now
                self.session.send(link.T_TELEMETRY, self.telemetry_payload(now), link.CLASS_TELEMETRY)
                self.session.send(link.T_TELEMETRY, self.counters_payload(now), link.CLASS_TELEMETRY)
        except Exception:
            self._caught("telemetry")
        if self._rebooting and (
            self.session.backlog() == 0 or ticks_diff(now, self._reboot_at) >= self.reboot_grace_ms
        ):
            self._rebooting = False
            if self._reset is not None:
                try:
                    self._reset()  # machine.reset() does not return; SystemExit passes through
                except Exception:
                    self._caught("reset")

    def _poll_bell(self, now):
        ev = self.bell.poll(now)
        if ev == _bell.PRESSED:
            self.presses += 1
            if self.bell_alarm_pending():
                if not self._folded:
                    self._folded_t = self.bell.pressed_at
                self._folded += 1
            else:
                self._send_bell(1, self.bell.pressed_at)
        elif ev is not None:
            self._event(b'{"k":"bell","st":"%s","id":"%s","t":%d}' % (ev, self.bell_id, now))
        if self._folded and not self.bell_alarm_pending():
            n = self._folded
            self._folded = 0
            self._send_bell(n, self._folded_t)

    def _poll_sensors(self, now):
        s = self.sensors
        if not s.sample(now):
            return
        if s.temp_event is not None:
            self._event(b'{"k":"temp","st":"%s","c":%.1f,"t":%d}' % (s.temp_event, s.temp_c, now))
        if s.supply_event is not None:
            self._event(b'{"k":"supply","st":"%s","v":%.2f,"t":%d}' % (s.supply_event, s.supply_v, now))

    def telemetry_payload(self, now):
        # Readings; the counters go in a second frame (counters_payload) so each stays well
        # inside 240 bytes however large the counters grow.
        return b'{"k":"tel","up":%d,"c":%.1f,"v":%.2f,"heap":%d,"loop":"%s","in":[%d,%d,%d,%d],"bp":%d,"q":%d,"t":%d}' % (
            self._uptime(now),
            self.sensors.temp_c,
            self.sensors.supply_v,
            self._mem_free(),
            self.circuit.state,
            _flag(self.bell.down),
            _flag(self.bell.stuck),
            _flag(self.door.is_open),
            _flag(self.lamp.lit),
            self.presses,
            self.session.backlog(),
            now,
        )

    def counters_payload(self, now):
        s = self.session
        counts = self.decoder.error_counts
        fe = b",".join([b"%d" % counts.get(reason, 0) for reason in link.ERROR_REASONS])
        return b'{"k":"cnt","ln":[%d,%d,%d,%d,%d,%d,%d],"fe":[%s],"cm":[%d,%d,%d],"exc":%d,"t":%d}' % (
            s.sent,
            s.retransmits,
            s.duplicates,
            s.delivered,
            s.dropped_telemetry,
            s.dropped_events,
            s.link_downs,
            fe,
            self.commands,
            self.unknown_commands,
            self.bad_commands,
            self.exceptions,
            now,
        )

    # -- link

    def on_bytes(self, data, now):
        # Bytes read from the UART. Decode errors are counted by the decoder (telemetry fe).
        try:
            items = self.decoder.feed(data)
        except Exception:
            self._caught("decode")
            return
        for item in items:
            if not isinstance(item, link.Frame):
                continue
            try:
                frame = self.session.on_frame(item, now)
            except Exception:
                self._caught("session")
                continue
            if frame is not None and frame.frame_type == link.T_COMMAND:
                try:
                    self._on_command(frame.payload, now)
                except Exception:
                    self._caught("command")
                    try:
                        self._result(b'{"ok":false,"err":"internal","t":%d}' % now)
                    except Exception:
                        pass
            try:
                # An ack may have freed the bell: send the presses folded meanwhile now.
                if self._folded and not self.bell_alarm_pending():
                    n = self._folded
                    self._folded = 0
                    self._send_bell(n, self._folded_t)
            except Exception:
                self._caught("bell")

    def pending_output(self, now):
        # Frames to write to the UART now, in order (a list of bytes, often empty).
        try:
            return self.session.poll(now)
        except Exception:
            self._caught("poll")
            return []

    # -- commands

    def _on_command(self, payload, now):
        self.commands += 1
        try:
            cmd = json.loads(payload)
        except Exception:
            cmd = None
        name = cmd.get("cmd") if type(cmd) is dict else None
        if type(name) is not str:
            self.bad_commands += 1
            self._result(b'{"ok":false,"err":"bad-command","t":%d}' % now)
            return
        cid = _id_suffix(cmd.get("id"))
        if name == "lamp":
            self._cmd_lamp(cmd, cid, now)
        elif name == "self-test":
            self._cmd_self_test(cid, now)
        elif name == "status":
            self._cmd_status(cid, now)
        elif name == "ping":
            self._result(b'{"cmd":"ping","ok":true%s,"t":%d}' % (cid, now))
        elif name == "reboot":
            self._result(b'{"cmd":"reboot","ok":true%s,"t":%d}' % (cid, now))
            self._rebooting = True
            self._reboot_at = now
        else:
            self.unknown_commands += 1
            self._result(
                b'{"cmd":%s,"ok":false,"err":"unknown-command"%s,"t":%d}'
                % (json.dumps(name[:32]), cid, now)
            )

    def _cmd_lamp(self, cmd, cid, now):
        on = cmd.get("on")
        seconds = cmd.get("s", 0)
        buzz = cmd.get("buzz", False)
        if (
            type(on) is not bool
            or type(buzz) is not bool
            or type(seconds) is not int
            or not 0 <= seconds <= MAX_LAMP_S
        ):
            self.bad_commands += 1
            self._result(b'{"cmd":"lamp","ok":false,"err":"bad-command"%s,"t":%d}' % (cid, now))
            return
        self.lamp.set(on, now, seconds, buzz)
        self._result(
            b'{"cmd":"lamp","ok":true,"lamp":%d,"buzz":%d%s,"t":%d}'
            % (_flag(self.lamp.lit), _flag(self.lamp.buzzing), cid, now)
        )

    def _cmd_self_test(self, cid, now):
        loop = self.circuit.read()
        s = self.sensors
        s.read()
        ok = (
            loop == _bell.NORMAL
            and not self.bell.stuck
            and s.temp_c < s.over_temp.limit
            and s.supply_v > s.low_supply.limit
        )
        self._result(
            b'{"cmd":"self-test","ok":%s,"loop":"%s","raw":%d,"c":%.1f,"v":%.2f,"stuck":%d%s,"t":%d}'
            % (_TRUE if ok else _FALSE, loop, self.circuit.raw, s.temp_c, s.supply_v,
               _flag(self.bell.stuck), cid, now)
        )

    def _cmd_status(self, cid, now):
        s = self.sensors
        ln = self.session
        self._result(
            b'{"cmd":"status","ok":true,"fw":"%s","rst":"%s","up":%d,"loop":"%s","in":[%d,%d,%d,%d],'
            b'"c":%.1f,"v":%.2f,"heap":%d,"bp":%d,"peer":%d,"q":%d,"exc":%d%s,"t":%d}'
            % (
                FIRMWARE_VERSION,
                self.reset_cause,
                self._uptime(now),
                self.circuit.state,
                _flag(self.bell.down),
                _flag(self.bell.stuck),
                _flag(self.door.is_open),
                _flag(self.lamp.lit),
                s.temp_c,
                s.supply_v,
                self._mem_free(),
                self.presses,
                _flag(ln.peer_up),
                ln.backlog(),
                self.exceptions,
                cid,
                now,
            )
        )
