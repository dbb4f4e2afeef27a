-- Secrets at rest. A live captions link is found by the SHA-256 of its token, and the owner's
-- copy of the link is sealed under the server's key (PARLEY_SECRET_KEY); a calendar's feed
-- address, which often carries a private token or credentials, is sealed and `url` keeps only
-- a redacted form to show. Values stored in the clear by earlier versions (`share_token`, `url`)
-- are sealed by the server when it opens the database: SQL has no key to seal them with.
ALTER TABLE meetings ADD COLUMN share_hash TEXT;
ALTER TABLE meetings ADD COLUMN share_sealed TEXT;
CREATE UNIQUE INDEX meetings_share_hash ON meetings (share_hash);
-- What the link shows besides live captions and the transcript: nothing ('captions'), the
-- summary ('summary'), or the summary and every speaker's recording ('all'). The owner chooses.
ALTER TABLE meetings ADD COLUMN share_scope TEXT NOT NULL DEFAULT 'captions'
    CHECK (share_scope IN ('captions', 'summary', 'all'));
ALTER TABLE calendars ADD COLUMN url_sealed TEXT;

-- One value sealed by the first server to open the database: a server started with another key
-- fails to open it at once, rather than sealing new secrets nobody else can open.
CREATE TABLE sealing_check (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    sealed TEXT NOT NULL
);
