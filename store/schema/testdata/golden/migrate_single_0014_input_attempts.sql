-- Exec
CREATE TABLE IF NOT EXISTS input_attempts (
    time      DateTime('UTC'),
    source    String,
    input_id  String,
    instance  String,
    attempt   String,
    event     String
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(time)
ORDER BY (source, input_id);
