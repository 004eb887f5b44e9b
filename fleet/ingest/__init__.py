"""MQTT ingest: `mqtt` (the fleet's one paho user) receives and acknowledges; `apply` decides
what a node's message does, `visits` carries a technician's signed site visit to its ticket, and
`liveness` takes nodes that went silent offline."""
