"""Inbound edge: OPC UA and Modbus sources, register decoding and plant simulators.

Knows nothing of the bus, the store or the environment.
"""
