-- A per-statement NOTIFY trigger makes every appending transaction take the cluster-wide
-- notification lock at commit, across its WAL flush: appends serialize (measured: a tenth
-- of the raw INSERT rate). Appenders now signal followers after they commit instead,
-- coalesced (see eventstore/src/listen.rs), and followers also poll as a fallback.
DROP TRIGGER IF EXISTS events_appended ON events;
DROP FUNCTION IF EXISTS notify_events_appended();
