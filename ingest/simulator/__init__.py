"""Plant simulators: a deterministic plant model served over real OPC UA and Modbus TCP."""
