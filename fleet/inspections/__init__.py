"""Regular inspections the maintenance contract logs: monthly checks of the control centre's
equipment (site class "centre"), recurring field checks of poles ("field") and the nodes'
remote self-tests ("remote"). `schedule` decides what is due (pure, time injected), `models`
stores what was done, `service` records and lists them; the monthly report
(fleet.reports) counts them against what the schedule expected."""
