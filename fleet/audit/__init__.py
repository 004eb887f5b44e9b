"""The audit log: every state-changing action, who did it, when, to what."""
