-- Every resource kind (the id prefix, e.g. 'cus') shares these tables; ids
-- come from one sequence per kind (ids_<kind>, created at startup).
--
-- A record is stored whole, as its protobuf encoding, with the columns the
-- database needs to enforce and index: the sequence number (the id's
-- number, so keyset paging is `seq > $after ORDER BY seq`), the version (the
-- etag) and a digest of the group (e.g. the product category) for the
-- filtered listing. Digests instead of values keep index entries small
-- whatever the user sends, and compare bytes exactly.
CREATE TABLE records (
    kind    text   NOT NULL,
    seq     bigint NOT NULL CHECK (seq > 0),
    grp     bytea,
    version bigint NOT NULL CHECK (version > 0),
    record  bytea  NOT NULL,
    PRIMARY KEY (kind, seq)
);

CREATE INDEX records_by_group ON records (kind, grp, seq) WHERE grp IS NOT NULL;

-- The database enforces the uniqueness of every unique key (a customer's
-- lower-cased e-mail, a product's SKU): one row per key, the primary key
-- on its digest; concurrent inserts of one key serialize on it and exactly
-- one wins. The value itself (bytes: text cannot hold NUL) is kept for
-- the error message.
CREATE TABLE unique_keys (
    kind   text   NOT NULL,
    field  text   NOT NULL,
    digest bytea  NOT NULL,
    value  bytea  NOT NULL,
    seq    bigint NOT NULL,
    PRIMARY KEY (kind, field, digest),
    FOREIGN KEY (kind, seq) REFERENCES records (kind, seq) ON DELETE CASCADE
);

CREATE INDEX unique_keys_by_record ON unique_keys (kind, seq);
