# Controller temperature (the RP2040's on-chip sensor on ADC channel 4) and supply voltage
# (through a resistor divider), sampled every sample_ms, with threshold events that fire
# once per crossing. The conversions are pure functions so they can be checked alone.

from link import ticks_diff

VREF = 3.3
ADC_FULL = 65535

HIGH = "high"
LOW = "low"
NORMAL = "normal"


def adc_volts(raw, vref=VREF):
    return raw * vref / ADC_FULL


def temp_c(raw, vref=VREF):
    # RP2040 datasheet 4.9.5: 27 degC reads 0.706 V, slope -1.721 mV/degC.
    return 27 - (adc_volts(raw, vref) - 0.706) / 0.001721


def supply_v(raw, divider_ratio, vref=VREF):
    # divider_ratio: supply volts per volt at the ADC pin, e.g. (100k + 22k) / 22k.
    return adc_volts(raw, vref) * divider_ratio


class Threshold:
    # above=True: raised when value >= limit, cleared when value <= limit - hysteresis.
    # above=False: raised when value <= limit, cleared when value >= limit + hysteresis.
    # update() returns the raised_state / NORMAL string on a crossing, else None.

    def __init__(self, limit, hysteresis, above=True, raised_state=HIGH):
        self.limit = limit
        self.hysteresis = hysteresis
        self.above = above
        self.raised_state = raised_state
        self.raised = False

    def update(self, value):
        if self.above:
            crossed = value >= self.limit if not self.raised else value > self.limit - self.hysteresis
        else:
            crossed = value <= self.limit if not self.raised else value < self.limit + self.hysteresis
        if crossed == self.raised:
            return None
        self.raised = crossed
        return self.raised_state if crossed else NORMAL


class Sensors:
    # temp_adc, supply_adc: objects with read_u16(). Each sample averages `samples` reads.
    # After sample() returns True, temp_c / supply_v hold the new readings and temp_event /
    # supply_event the crossing each caused (or None).

    def __init__(
        self,
        temp_adc,
        supply_adc,
        divider_ratio=122 / 22,
        over_temp_c=70.0,
        temp_hysteresis_c=5.0,
        low_supply_v=10.5,
        supply_hysteresis_v=0.5,
        sample_ms=1000,
        samples=4,
        now=0,
    ):
        self.temp_adc = temp_adc
        self.supply_adc = supply_adc
        self.divider_ratio = divider_ratio
        self.sample_ms = sample_ms
        self.samples = samples
        self.over_temp = Threshold(over_temp_c, temp_hysteresis_c, True, HIGH)
        self.low_supply = Threshold(low_supply_v, supply_hysteresis_v, False, LOW)
        self.temp_c = 0.0
        self.supply_v = 0.0
        self.temp_event = None
        self.supply_event = None
        self._sampled_at = now - sample_ms

    def _average(self, adc):
        total = 0
        for _ in range(self.samples):
            total += adc.read_u16()
        return total // self.samples

    def read(self):
        # Fresh readings now, without touching the thresholds (for a self-test).
        self.temp_c = temp_c(self._average(self.temp_adc))
        self.supply_v = supply_v(self._average(self.supply_adc), self.divider_ratio)

    def sample(self, now):
        if ticks_diff(now, self._sampled_at) < self.sample_ms:
            return False
        self._sampled_at = now
        self.read()
        self.temp_event = self.over_temp.update(self.temp_c)
        self.supply_event = self.low_supply.update(self.supply_v)
        return True
