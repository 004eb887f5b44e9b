"""The contract's monthly reports: `sla_month` computes the SLA figures from values (pure),
`service` loads a month from the database, `render` writes JSON, CSV and a printable page,
`routes` serves them under /api/v1/reports. docs/reports.md explains each figure."""
