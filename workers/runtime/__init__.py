"""The runtime: settings, the Faust app and its agents, HTTP views, lifecycle and the composition root."""
