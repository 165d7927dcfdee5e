"""Domain and application: config, cases, duty schedule, routing, the store, the app factory."""
