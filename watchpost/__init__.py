"""The `watchpost` command: one entry point whose subcommands load only what they need."""

__version__ = "0.1.0"
