"""The eventfleet runtime: settings, ports and adapters, Faust agents, HTTP views, metrics, CLI."""
