"""The console's routes, one module per area: pages, session (login), cameras, events, health."""
