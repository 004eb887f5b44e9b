"""The fleet's inventory: sites, nodes, cameras, pole controllers, storage; CSV import."""
