# The edge agent's release, reported in its birth and status. `watchpost ota build` stamps this
# file in each edge-agent release it packages (docs/adr/0009), as firmware/version.py is for the
# pole controller's firmware.
AGENT_VERSION = "0.1.0"
