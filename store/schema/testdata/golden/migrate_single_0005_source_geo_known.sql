-- Exec
ALTER TABLE source_attribution
    ADD COLUMN country          String,
    ADD COLUMN asn              UInt32,
    ADD COLUMN as_org           String,
    ADD COLUMN spf_includes     Array(String),
    ADD COLUMN known_source     String,
    ADD COLUMN known_authorised UInt8;
