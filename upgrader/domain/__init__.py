"""Pure values and rules: versions, skew policy, catalog, inventories, the planner. No I/O."""
