# Firmware release of the pole controller, reported in HELLO and in the status result.
FIRMWARE_VERSION = "0.1.0"
