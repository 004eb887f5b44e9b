"""The edge agent that runs on the Raspberry Pi beside a pole."""
