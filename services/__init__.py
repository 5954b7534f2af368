"""Runtime: settings, bus, store, gateway, aggregator, API and CLI.

The only code that reads the environment.
"""
