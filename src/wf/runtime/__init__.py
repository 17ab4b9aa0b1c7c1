"""The durable engine: entrypoint and step API, engine, runner, store. No CLI, no rich."""
