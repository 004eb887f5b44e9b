"""The simulated pole controller: the real MicroPython unix port behind a serial console that
unmodified `mpremote` uses as if it were a Pico on USB (`console.py`)."""
