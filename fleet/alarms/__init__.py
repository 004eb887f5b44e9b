"""Bell alarms: their own path, apart from faults. Latched until an operator acknowledges;
the acknowledgement goes back to the pole (its lamp); a timeline per alarm with latencies."""
