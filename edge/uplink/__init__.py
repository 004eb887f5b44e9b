"""The node's MQTT uplink: `session` decides, `mqtt` (the only paho importer) does."""
