"""How state folds and when to snapshot: domain definitions, reducers, rules and replay."""
