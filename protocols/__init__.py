"""Wire contracts shared by the pole controller, the edge agent and the fleet manager.

No I/O here: bytes in, typed messages or typed errors out. `link` is the serial link between
controller and edge (and runs on MicroPython too); `topics` and `messages` are the MQTT
contract between edge and fleet; `ota` is the signed update manifest.
"""

CONTRACT_VERSION = 1
