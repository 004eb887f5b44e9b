"""Signed OTA updates, the fleet's side (docs/adr/0009, docs/ota.md): `releases` verifies and
keeps uploaded releases and serves them to nodes; `campaign` is the pure core of a campaign
(waves, holds, lifecycles, the next step); `store` keeps campaigns in the database; `runner`
applies the core's decisions and sends the offers; `routes` is the API."""
