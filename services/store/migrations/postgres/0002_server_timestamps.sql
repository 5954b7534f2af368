-- The OPC UA server's timestamp of each reading; NULL where the protocol has none (Modbus).
ALTER TABLE readings ADD COLUMN server_ts_ns bigint;
