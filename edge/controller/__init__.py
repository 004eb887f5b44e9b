"""The pole controller as the edge agent sees it: its JSON payloads (`payloads`), the asyncio
serial-link shell around protocols.link (`link`), and a fake transport for tests (`fake`)."""
