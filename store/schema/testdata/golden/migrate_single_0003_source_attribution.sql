-- Exec
CREATE TABLE IF NOT EXISTS source_attribution (
    ip             String,
    ptr            String,
    ptr_confirmed  UInt8,
    spf_domain     String,
    spf_mechanism  String,
    checked_at     DateTime('UTC')
) ENGINE = ReplacingMergeTree(checked_at)
ORDER BY ip;
