"""Who may do what: API tokens (one per person or system), their roles, and the permissions
each role holds (`roles.PERMISSIONS`, the matrix the API enforces)."""
