-- What a directory source knew of each file when it last read it: the file's stamp (what `stat`
-- tells of it: device, inode, length, modification and change times) and its content's digest,
-- so that a start reads again only the files whose stamp changed (a warm start at 100 000 files
-- otherwise reads and hashes a gigabyte). A row whose stamp no longer matches is ignored.
CREATE TABLE dir_files (
    -- The source's shard (`dir:` and the directory's path as given).
    directory TEXT NOT NULL,
    name TEXT NOT NULL,
    stamp TEXT NOT NULL,
    -- The first 128 bits of the content's SHA-256, in hex (as in the versions of its objects).
    digest TEXT NOT NULL,
    PRIMARY KEY (directory, name)
);
