"""MQTT ingest: `mqtt` (the fleet's one paho user) receives and acknowledges; `apply` decides."""
