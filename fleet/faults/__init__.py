"""Faults, tickets and the maintenance contract's SLA clocks: the pure core.

`rules` decides from node events when a fault opens and clears; `tickets` is a fault ticket's
lifecycle; `sla` its clocks (response, resolution, report); `escalation` which reminders are
due. No I/O here: the fleet's shell feeds values and the time. See docs/faults.md.
"""
