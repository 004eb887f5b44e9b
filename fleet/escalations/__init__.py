"""Escalation hooks: the shell that sends the SLA reminders `fleet.faults.escalation` finds due,
by webhook and e-mail, once per step per ticket across restarts and fleet workers.

`notice` words a due step (pure); `senders` are the only modules here that talk to the outside
(HTTP, SMTP); `runner.Escalator` claims each step in the `escalation_sent` table (`models`),
sends it and records the outcome; `settings` is what the fleet server embeds. See
docs/escalations.md.
"""
