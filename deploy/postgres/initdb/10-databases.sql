-- One server, one database per service: registration's is POSTGRES_DB (created by the image),
-- these are attendance's records and reporting's timeline. The image runs this file once, when
-- the data volume is empty; on an existing volume create them by hand (docs/operations.md).
CREATE DATABASE attendance OWNER monitor;
CREATE DATABASE reporting OWNER monitor;
