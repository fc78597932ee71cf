-- Exec
ALTER TABLE aggregate_outcomes
    ADD COLUMN source_ipsMap.ip_hash Array(UInt32)
        DEFAULT if(source_ip = '', emptyArrayUInt32(), [toUInt32(cityHash64(source_ip))]),
    ADD COLUMN source_ipsMap.records Array(UInt64)
        DEFAULT if(source_ip = '', emptyArrayUInt64(), [toUInt64(1)]);
