"""The engine: one object built from its parts (store, actions, settings)."""
