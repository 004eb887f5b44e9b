"""Signed OTA updates on the node (docs/adr/0009): fetch, verify, install side by side, restart
through systemd, commit after a health check or roll back by itself.

    state.py     the job's state machine and the pure decisions (offer, boot)
    fetch.py     HTTP download with Range resume          verify.py   manifest and artifact checks
    archive.py   safe tar extraction                      releases.py the release directories and links
    files.py     atomic state files                       health.py   the health gate
    node.py      the shell the agent runs (jobs, reports)  boot.py     systemd's ExecStart
    provision.py the first release, committed at once      cli.py      `watchpost ota node …`
    crash.py     fault injection for the power-cut tests (no-op unless the test sets it)
"""
