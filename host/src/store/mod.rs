//! The ban store: SQLite in WAL mode in the state directory. Bans (with
//! their history, for `bantime.increment`) and the read positions of log
//! files. A write returns once it is in the WAL in the kernel's hands
//! (`synchronous = NORMAL`): a ban reported is a ban kept, whatever happens
//! to the process next (a crash, `kill -9`). A power loss or a kernel crash
//! may roll back the last transactions, never half of one: bans go with
//! the read positions they were saved with, so their lines are read and
//! judged again at the next start (and the firewall, being the kernel's,
//! was empty anyway). A sync to disk per commit (`FULL`) cost more than
//! the whole of a burst's filtering on the machines measured; fail2ban
//! itself writes with `synchronous = OFF` and its journal in memory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use crate::tail::{Cursor, Progress};

mod recover;
pub use recover::Recovery;

/// The schema version this build writes.
const SCHEMA_VERSION: i64 = 3;

/// A store problem, naming the database file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or set up.
    #[error("ban database {}: {message}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// What went wrong and what to do.
        message: String,
    },
    /// A read or write failed.
    #[error("ban database {}: {what}: {message}", path.display())]
    Query {
        /// The file.
        path: PathBuf,
        /// The operation.
        what: &'static str,
        /// SQLite's words.
        message: String,
    },
}

/// Who decided a ban; `filter` and `manual` in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Origin {
    /// The jail's filter found `maxretry` failures.
    #[default]
    #[serde(rename = "filter")]
    Failures,
    /// An admin asked (`wasmban ban JAIL ADDRESS`).
    #[serde(rename = "manual")]
    Manual,
    /// Another host of the fleet banned it.
    #[serde(rename = "fleet")]
    Fleet,
}

impl Origin {
    /// How the store, `banned --json` and the metrics name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Failures => "filter",
            Origin::Manual => "manual",
            Origin::Fleet => "fleet",
        }
    }

    /// The origin a stored name stands for; bans stored before origins
    /// were kept (and any name this build does not know) are the filter's.
    pub fn from_stored(name: &str) -> Origin {
        match name {
            "manual" => Origin::Manual,
            "fleet" => Origin::Fleet,
            _ => Origin::Failures,
        }
    }
}

/// The columns [`ban_at`] reads, in its order.
const BAN_COLUMNS: &str = "jail, ip, time, bantime, bancount, failures, matches, fields, origin";

/// One ban as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct BanRecord {
    /// The jail.
    pub jail: String,
    /// What is banned: a normalised address, or the id a filter declared.
    pub id: String,
    /// Unix seconds when the ban started.
    pub time: i64,
    /// Seconds; negative means forever.
    pub bantime: i64,
    /// How many times this id was banned in this jail, this ban included.
    pub bancount: u32,
    /// Failures that led to it.
    pub failures: u32,
    /// The matched lines.
    pub matches: Vec<String>,
    /// What the filter captured (`user`, ...), for actions' `<F-*>` tags
    /// (a restored ban's actions get them too).
    pub fields: Vec<(String, String)>,
    /// Who decided it.
    pub origin: Origin,
}

impl BanRecord {
    /// Whether the ban is still in force at `now`.
    pub fn active_at(&self, now: i64) -> bool {
        self.bantime < 0 || self.time + self.bantime > now
    }
}

/// fail2ban's default `dbmaxmatches`.
pub const DEFAULT_MAX_MATCHES: usize = 10;

/// A ban in force gets its new length (prolonged).
const PROLONG: &str = "UPDATE bans SET bantime = ?4 WHERE active = 1 AND jail = ?1 AND ip = ?2 AND time = ?3";

/// The store.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// `dbmaxmatches`: matched lines kept per ban (the latest).
    max_matches: usize,
}

impl Store {
    /// Open (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let open_err = |message: String| StoreError::Open { path: path.to_path_buf(), message };
        let conn = Connection::open(path).map_err(|e| open_err(e.to_string()))?;
        let setup = "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA busy_timeout = 5000;
             CREATE TABLE IF NOT EXISTS bans (
                 jail TEXT NOT NULL,
                 ip TEXT NOT NULL,
                 time INTEGER NOT NULL,
                 bantime INTEGER NOT NULL,
                 bancount INTEGER NOT NULL,
                 failures INTEGER NOT NULL,
                 matches TEXT NOT NULL,
                 active INTEGER NOT NULL DEFAULT 1,
                 fields TEXT NOT NULL DEFAULT '[]',
                 origin TEXT NOT NULL DEFAULT 'filter',
                 PRIMARY KEY (jail, ip, time)
             );
             CREATE INDEX IF NOT EXISTS bans_by_ip ON bans (ip, jail);
             CREATE INDEX IF NOT EXISTS bans_active ON bans (active);
             CREATE TABLE IF NOT EXISTS positions (
                 path TEXT PRIMARY KEY,
                 dev INTEGER NOT NULL,
                 ino INTEGER NOT NULL,
                 offset INTEGER NOT NULL,
                 head_len INTEGER NOT NULL,
                 fingerprint INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS journal_cursors (
                 jail TEXT PRIMARY KEY,
                 cursor TEXT NOT NULL
             );
             CREATE TABLE IF NOT EXISTS fleet_outbox (
                 key TEXT PRIMARY KEY,
                 record TEXT NOT NULL
             );";
        conn.execute_batch(setup).map_err(|e| {
            open_err(format!("{e}; if this is not a wasmban database, move it away and wasmban will create a new one"))
        })?;
        let version: i64 =
            conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| open_err(e.to_string()))?;
        // Schema 1 had no captured fields, schema 2 no origins: their bans
        // get none, and count as the filter's.
        let upgrade = match version {
            1 => {
                "ALTER TABLE bans ADD COLUMN fields TEXT NOT NULL DEFAULT '[]'; \
                  ALTER TABLE bans ADD COLUMN origin TEXT NOT NULL DEFAULT 'filter';"
            }
            2 => "ALTER TABLE bans ADD COLUMN origin TEXT NOT NULL DEFAULT 'filter';",
            _ => "",
        };
        match version {
            1 | 2 => conn
                .execute_batch(&format!("BEGIN; {upgrade} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"))
                .map_err(|e| open_err(format!("upgrading its schema: {e}")))?,
            0 => conn
                .execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
                .map_err(|e| open_err(e.to_string()))?,
            SCHEMA_VERSION => {}
            newer => {
                return Err(open_err(format!(
                    "it was written by a newer wasmban (schema {newer}, this one reads {SCHEMA_VERSION}); upgrade wasmban"
                )));
            }
        }
        Ok(Store { conn, path: path.to_path_buf(), max_matches: DEFAULT_MAX_MATCHES })
    }

    /// Keep at most `n` matched lines of each ban written from now on (the
    /// latest), as fail2ban's `dbmaxmatches`; 0 keeps none. Actions still
    /// get every line of a new ban; restored bans and the merged tags get
    /// what was kept.
    pub fn set_max_matches(&mut self, n: usize) {
        self.max_matches = n;
    }

    /// `dbmaxmatches`.
    pub fn max_matches(&self) -> usize {
        self.max_matches
    }

    fn query_err(&self, what: &'static str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |e| StoreError::Query { path: self.path.clone(), what, message: e.to_string() }
    }

    /// Record a ban; durable when this returns.
    pub fn record_ban(&mut self, ban: &BanRecord) -> Result<(), StoreError> {
        self.record_progress(std::slice::from_ref(ban), &[])
    }

    /// Record new bans and the read positions reached with them in one
    /// transaction: durable together when this returns, so a restart
    /// neither loses a ban nor re-reads the lines that led to it.
    pub fn record_progress(&mut self, bans: &[BanRecord], cursors: &[(PathBuf, Cursor)]) -> Result<(), StoreError> {
        self.record_journal_progress(bans, &[], cursors, None)
    }

    /// Record `bans` of `jail`, the new lengths of its bans `prolonged`,
    /// and where its reading stands (`progress`), in one transaction: a
    /// burst's group of batches is one commit, and a restart finds the
    /// prolongations with the positions of the lines that made them.
    pub fn record(
        &mut self,
        jail: &str,
        bans: &[BanRecord],
        prolonged: &[BanRecord],
        progress: &Progress,
    ) -> Result<(), StoreError> {
        self.record_journal_progress(bans, prolonged, &progress.files, progress.journal.as_deref().map(|c| (jail, c)))
    }

    /// Every saved file position, for the sources to resume from.
    pub fn saved_positions(&self) -> Result<HashMap<PathBuf, Cursor>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT path, dev, ino, offset, head_len, fingerprint FROM positions")
            .map_err(self.query_err("read positions"))?;
        let rows = stmt
            .query_map([], |r| Ok((PathBuf::from(r.get::<_, String>(0)?), cursor_at(r, 1)?)))
            .map_err(self.query_err("read positions"))?;
        rows.collect::<Result<HashMap<_, _>, _>>().map_err(self.query_err("read positions"))
    }

    /// [`Store::record_progress`], with a jail's journal cursor
    /// (`(jail, cursor)`) saved in the same transaction.
    pub fn record_journal_progress(
        &mut self,
        bans: &[BanRecord],
        prolonged: &[BanRecord],
        cursors: &[(PathBuf, Cursor)],
        journal: Option<(&str, &str)>,
    ) -> Result<(), StoreError> {
        let path = &self.path;
        let err = |what: &'static str| {
            move |e: rusqlite::Error| StoreError::Query { path: path.clone(), what, message: e.to_string() }
        };
        let started = std::time::Instant::now();
        let max_matches = self.max_matches;
        let tx = self.conn.transaction().map_err(err("begin a transaction"))?;
        for ban in bans {
            write_ban(&tx, ban, true, Existing::Replaced, max_matches).map_err(err("record a ban"))?;
        }
        for ban in prolonged {
            tx.prepare_cached(PROLONG)
                .and_then(|mut s| s.execute(params![ban.jail, ban.id, ban.time, ban.bantime]))
                .map_err(err("prolong a ban"))?;
        }
        for (file, c) in cursors {
            write_position(&tx, file, c, Existing::Replaced).map_err(err("save a read position"))?;
        }
        if let Some((jail, cursor)) = journal {
            tx.execute("INSERT OR REPLACE INTO journal_cursors (jail, cursor) VALUES (?1, ?2)", params![jail, cursor])
                .map_err(err("save a journal cursor"))?;
        }
        tx.commit().map_err(err("commit"))?;
        crate::metrics::global().store_commit(started.elapsed());
        Ok(())
    }

    /// Take over bans and read positions from another program's database
    /// (`wasmban import-fail2ban`), all in one transaction: either all of
    /// it is in the store afterwards or none of it. `bans` pairs each ban
    /// with whether it is in force. What the store holds already wins: a
    /// ban with the same jail, id and start is kept as it is, and a file
    /// wasmban has read itself keeps its own position. Returns how many
    /// bans and positions were added.
    pub fn import(
        &mut self,
        bans: &[(BanRecord, bool)],
        positions: &[(PathBuf, Cursor)],
    ) -> Result<(usize, usize), StoreError> {
        let path = &self.path;
        let err = |what: &'static str| {
            move |e: rusqlite::Error| StoreError::Query { path: path.clone(), what, message: e.to_string() }
        };
        let max_matches = self.max_matches;
        let tx = self.conn.transaction().map_err(err("begin a transaction"))?;
        let mut added = (0, 0);
        for (ban, active) in bans {
            added.0 += write_ban(&tx, ban, *active, Existing::Kept, max_matches).map_err(err("import a ban"))?;
        }
        for (file, c) in positions {
            added.1 += write_position(&tx, file, c, Existing::Kept).map_err(err("import a read position"))?;
        }
        tx.commit().map_err(err("commit"))?;
        Ok(added)
    }

    /// The bans of one jail in force at `now`.
    pub fn active_bans_of(&self, jail: &str, now: i64) -> Result<Vec<BanRecord>, StoreError> {
        self.read_bans(
            &format!(
                "SELECT {BAN_COLUMNS} FROM bans
             WHERE active = 1 AND jail = ?1 AND (bantime < 0 OR time + bantime > ?2) ORDER BY time"
            ),
            params![jail, now],
        )
    }

    /// Mark the active bans of `ip` in `jail` (every jail when `None`)
    /// lifted; returns how many there were.
    pub fn lift(&mut self, jail: Option<&str>, ip: &str) -> Result<usize, StoreError> {
        let n = match jail {
            Some(j) => self
                .conn
                .execute("UPDATE bans SET active = 0 WHERE active = 1 AND jail = ?1 AND ip = ?2", params![j, ip]),
            None => self.conn.execute("UPDATE bans SET active = 0 WHERE active = 1 AND ip = ?1", params![ip]),
        }
        .map_err(self.query_err("lift a ban"))?;
        Ok(n)
    }

    /// Lift the bans of `ids` in `jail` (with `forget`, delete them with
    /// their history, as fail2ban's database forgets an admin's unban), in
    /// one transaction: an `unban --all` of a million bans is one commit,
    /// not a million.
    pub fn lift_many(&mut self, jail: &str, ids: &[&str], forget: bool) -> Result<(), StoreError> {
        let (what, sql) = match forget {
            true => ("forget bans", "DELETE FROM bans WHERE jail = ?1 AND ip = ?2"),
            false => ("lift bans", "UPDATE bans SET active = 0 WHERE active = 1 AND jail = ?1 AND ip = ?2"),
        };
        self.each_in_transaction(what, sql, ids.iter().map(|id| (jail, *id)))
    }

    fn read_bans(&self, sql: &str, args: impl rusqlite::Params) -> Result<Vec<BanRecord>, StoreError> {
        let mut stmt = self.conn.prepare(sql).map_err(self.query_err("read bans"))?;
        let rows = stmt.query_map(args, ban_at).map_err(self.query_err("read bans"))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.query_err("read bans"))
    }

    /// Bans in force at `now`: what a restart restores.
    pub fn active_bans(&self, now: i64) -> Result<Vec<BanRecord>, StoreError> {
        self.read_bans(
            &format!(
                "SELECT {BAN_COLUMNS} FROM bans
             WHERE active = 1 AND (bantime < 0 OR time + bantime > ?1) ORDER BY time"
            ),
            params![now],
        )
    }

    /// Active bans whose time is up at `now`, marked lifted and returned
    /// (for their actions' unban).
    pub fn expire(&mut self, now: i64) -> Result<Vec<BanRecord>, StoreError> {
        let expired = self.read_bans(
            &format!(
                "SELECT {BAN_COLUMNS} FROM bans
             WHERE active = 1 AND bantime >= 0 AND time + bantime <= ?1 ORDER BY time"
            ),
            params![now],
        )?;
        self.conn
            .execute(
                "UPDATE bans SET active = 0 WHERE active = 1 AND bantime >= 0 AND time + bantime <= ?1",
                params![now],
            )
            .map_err(self.query_err("expire bans"))?;
        Ok(expired)
    }

    /// How many times `ip` was banned before, in `jail` (every jail when
    /// `None`, for `bantime.overalljails`).
    pub fn ban_count(&self, ip: &str, jail: Option<&str>) -> Result<u32, StoreError> {
        let count: i64 = match jail {
            Some(j) => {
                self.conn
                    .query_row("SELECT COUNT(*) FROM bans WHERE ip = ?1 AND jail = ?2", params![ip, j], |r| r.get(0))
            }
            None => self.conn.query_row("SELECT COUNT(*) FROM bans WHERE ip = ?1", params![ip], |r| r.get(0)),
        }
        .map_err(self.query_err("count bans"))?;
        Ok(count as u32)
    }

    /// Every ban of `ip` the store holds, in force or history, in every
    /// jail, oldest first: what fail2ban merges for `<ipfailures>` and
    /// `<ipmatches>` (and, of one jail, `<ipjail...>`).
    pub fn history(&self, ip: &str) -> Result<Vec<BanRecord>, StoreError> {
        self.read_bans(
            &format!(
                "SELECT {BAN_COLUMNS} FROM bans
             WHERE ip = ?1 ORDER BY time"
            ),
            params![ip],
        )
    }

    /// How many bans of `ip` in `jail` the store holds, and when the latest
    /// started.
    pub fn ban_summary(&self, ip: &str, jail: &str) -> Result<(u32, Option<i64>), StoreError> {
        self.conn
            .query_row("SELECT COUNT(*), MAX(time) FROM bans WHERE ip = ?1 AND jail = ?2", params![ip, jail], |r| {
                Ok((r.get::<_, i64>(0)? as u32, r.get(1)?))
            })
            .map_err(self.query_err("count bans"))
    }

    /// Forget lifted bans that ended more than `age` seconds before `now`
    /// (`dbpurgeage`); returns how many.
    pub fn purge(&mut self, now: i64, age: i64) -> Result<usize, StoreError> {
        self.conn
            .execute("DELETE FROM bans WHERE active = 0 AND bantime >= 0 AND time + bantime < ?1", params![now - age])
            .map_err(self.query_err("purge old bans"))
    }

    /// Save where a log file was read to.
    pub fn save_cursor(&mut self, path: &Path, c: &Cursor) -> Result<(), StoreError> {
        self.record_progress(&[], &[(path.to_path_buf(), *c)])
    }

    /// Keep `records` (the fleet's bucket key, the record) until they are
    /// published, in one transaction; a later record of a key replaces
    /// the earlier.
    pub fn outbox_put(&mut self, records: &[(String, String)]) -> Result<(), StoreError> {
        self.each_in_transaction(
            "keep a fleet record",
            "INSERT OR REPLACE INTO fleet_outbox (key, record) VALUES (?1, ?2)",
            records.iter().map(|(k, r)| (k.as_str(), r.as_str())),
        )
    }

    /// How many records wait to be published.
    pub fn outbox_len(&self) -> Result<usize, StoreError> {
        self.conn
            .query_row("SELECT COUNT(*) FROM fleet_outbox", [], |r| r.get::<_, i64>(0))
            .map(|n| n as usize)
            .map_err(self.query_err("count the fleet outbox"))
    }

    /// Run `sql` once with each of `rows` as its parameters, in one
    /// transaction.
    fn each_in_transaction<P: rusqlite::Params>(
        &mut self,
        what: &'static str,
        sql: &str,
        rows: impl IntoIterator<Item = P>,
    ) -> Result<(), StoreError> {
        let path = &self.path;
        let err = move |e: rusqlite::Error| StoreError::Query { path: path.clone(), what, message: e.to_string() };
        let tx = self.conn.transaction().map_err(err)?;
        for row in rows {
            tx.prepare_cached(sql).and_then(|mut s| s.execute(row)).map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    /// Records waiting to be published.
    pub fn outbox(&self) -> Result<Vec<(String, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT key, record FROM fleet_outbox ORDER BY rowid")
            .map_err(self.query_err("read the fleet outbox"))?;
        let rows =
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(self.query_err("read the fleet outbox"))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.query_err("read the fleet outbox"))
    }

    /// `records` were published: forget each, unless a later one of its
    /// key replaced it; one transaction.
    pub fn outbox_done(&mut self, records: &[(String, String)]) -> Result<(), StoreError> {
        self.each_in_transaction(
            "forget a published fleet record",
            "DELETE FROM fleet_outbox WHERE key = ?1 AND record = ?2",
            records.iter().map(|(k, r)| (k.as_str(), r.as_str())),
        )
    }

    /// Where a jail's journal was read to, if saved.
    pub fn load_journal_cursor(&self, jail: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row("SELECT cursor FROM journal_cursors WHERE jail = ?1", params![jail], |r| r.get(0))
            .optional()
            .map_err(self.query_err("load a journal cursor"))
    }
}

/// A ban from a row of `jail, ip, time, bantime, bancount, failures,
/// matches, fields`.
fn ban_at(r: &rusqlite::Row<'_>) -> rusqlite::Result<BanRecord> {
    let matches: String = r.get(6)?;
    let fields: String = r.get(7)?;
    Ok(BanRecord {
        jail: r.get(0)?,
        id: r.get(1)?,
        time: r.get(2)?,
        bantime: r.get(3)?,
        bancount: r.get(4)?,
        failures: r.get(5)?,
        matches: serde_json::from_str(&matches).unwrap_or_default(),
        fields: serde_json::from_str(&fields).unwrap_or_default(),
        origin: Origin::from_stored(&r.get::<_, String>(8)?),
    })
}

/// A file position from `dev, ino, offset, head_len, fingerprint`, the
/// row's columns from `first` on.
fn cursor_at(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Cursor> {
    Ok(Cursor {
        dev: r.get::<_, i64>(first)? as u64,
        ino: r.get::<_, i64>(first + 1)? as u64,
        offset: r.get::<_, i64>(first + 2)? as u64,
        head_len: r.get(first + 3)?,
        fingerprint: r.get::<_, i64>(first + 4)? as u64,
    })
}

/// What a write does to a row already there with the same key.
#[derive(Clone, Copy)]
enum Existing {
    /// The new row replaces it (the daemon's own writes).
    Replaced,
    /// It stays, and nothing is written (an import).
    Kept,
}

impl Existing {
    fn insert(self) -> &'static str {
        match self {
            Existing::Replaced => "INSERT OR REPLACE",
            Existing::Kept => "INSERT OR IGNORE",
        }
    }
}

/// Write `ban` (in force or history) in `tx`; the rows written.
fn write_ban(
    tx: &rusqlite::Transaction<'_>,
    ban: &BanRecord,
    active: bool,
    existing: Existing,
    max_matches: usize,
) -> rusqlite::Result<usize> {
    let kept = &ban.matches[ban.matches.len().saturating_sub(max_matches)..];
    let matches = serde_json::to_string(kept).unwrap_or_else(|_| "[]".into());
    let fields = serde_json::to_string(&ban.fields).unwrap_or_else(|_| "[]".into());
    // Cached: preparing costs as much as the write itself, once per ban.
    tx.prepare_cached(&format!(
        "{} INTO bans (jail, ip, time, bantime, bancount, failures, matches, active, fields, origin)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        existing.insert()
    ))?
    .execute(params![
        ban.jail,
        ban.id,
        ban.time,
        ban.bantime,
        ban.bancount,
        ban.failures,
        matches,
        active as i64,
        fields,
        ban.origin.as_str()
    ])
}

/// Write where `file` was read to, in `tx`; the rows written.
fn write_position(
    tx: &rusqlite::Transaction<'_>,
    file: &Path,
    c: &Cursor,
    existing: Existing,
) -> rusqlite::Result<usize> {
    tx.prepare_cached(&format!(
        "{} INTO positions (path, dev, ino, offset, head_len, fingerprint) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        existing.insert()
    ))?
    .execute(params![
        file.to_string_lossy(),
        c.dev as i64,
        c.ino as i64,
        c.offset as i64,
        c.head_len,
        c.fingerprint as i64
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban(jail: &str, ip: &str, time: i64, bantime: i64) -> BanRecord {
        BanRecord {
            jail: jail.into(),
            id: ip.into(),
            time,
            bantime,
            bancount: 1,
            failures: 5,
            matches: vec!["a line".into()],
            fields: vec![("user".into(), "root".into())],
            origin: Origin::Failures,
        }
    }

    #[test]
    fn bans_survive_a_reopen_and_expire_on_time() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("wasmban.sqlite3");
        {
            let mut s = Store::open(&db).unwrap();
            s.record_ban(&ban("sshd", "192.0.2.1", 1000, 600)).unwrap();
            s.record_ban(&ban("sshd", "192.0.2.2", 1000, -1)).unwrap();
            s.record_ban(&ban("recidive", "192.0.2.1", 1200, 3600)).unwrap();
        }
        let mut s = Store::open(&db).unwrap();
        let active: Vec<(String, String)> = s.active_bans(1500).unwrap().into_iter().map(|b| (b.jail, b.id)).collect();
        assert_eq!(active.len(), 3);
        let expired = s.expire(1600).unwrap();
        assert_eq!(expired.len(), 1);
        assert_eq!((expired[0].jail.as_str(), expired[0].id.as_str()), ("sshd", "192.0.2.1"));
        assert_eq!(expired[0].matches, ["a line"]);
        assert_eq!(expired[0].fields, [("user".to_string(), "root".to_string())]);
        assert_eq!(s.active_bans(1600).unwrap().len(), 2);
        // A permanent ban never expires.
        assert!(s.expire(10_000_000).unwrap().iter().all(|b| b.bantime >= 0));
        assert_eq!(s.active_bans(10_000_000).unwrap().len(), 1);
    }

    #[test]
    fn dbmaxmatches_keeps_the_latest_lines_of_each_ban() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("db")).unwrap();
        let mut b = ban("sshd", "192.0.2.1", 1000, 600);
        b.matches = (1..=5).map(|i| format!("line {i}")).collect();
        s.set_max_matches(2);
        s.record_ban(&b).unwrap();
        assert_eq!(s.history("192.0.2.1").unwrap()[0].matches, ["line 4", "line 5"]);
        s.set_max_matches(0);
        s.record_ban(&BanRecord { time: 2000, ..b }).unwrap();
        assert!(s.history("192.0.2.1").unwrap()[1].matches.is_empty());
    }

    #[test]
    fn counts_lifts_and_purges() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("db")).unwrap();
        for t in [0, 1000, 2000] {
            s.record_ban(&ban("sshd", "192.0.2.9", t, 100)).unwrap();
        }
        s.record_ban(&ban("nginx", "192.0.2.9", 3000, 100)).unwrap();
        assert_eq!(s.ban_count("192.0.2.9", Some("sshd")).unwrap(), 3);
        assert_eq!(s.ban_count("192.0.2.9", None).unwrap(), 4);
        assert_eq!(s.lift(Some("nginx"), "192.0.2.9").unwrap(), 1);
        assert_eq!(s.lift(None, "192.0.2.9").unwrap(), 3);
        assert!(s.active_bans(0).unwrap().is_empty());
        // Ended before 2500 - 1000: the bans ending at 100 and 1100.
        assert_eq!(s.purge(2500, 1000).unwrap(), 2);
        assert_eq!(s.ban_count("192.0.2.9", None).unwrap(), 2);
    }

    #[test]
    fn many_bans_are_lifted_or_forgotten_in_one_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("db")).unwrap();
        for ip in ["192.0.2.1", "192.0.2.2", "192.0.2.3"] {
            s.record_ban(&ban("sshd", ip, 0, 100)).unwrap();
            s.record_ban(&ban("sshd", ip, 1000, 100)).unwrap();
        }
        s.record_ban(&ban("nginx", "192.0.2.1", 1000, 100)).unwrap();
        s.lift_many("sshd", &["192.0.2.1", "192.0.2.2"], false).unwrap();
        let active: Vec<(String, String)> = s.active_bans(1050).unwrap().into_iter().map(|r| (r.jail, r.id)).collect();
        assert_eq!(active, [("sshd".to_string(), "192.0.2.3".to_string()), ("nginx".into(), "192.0.2.1".into())]);
        // Lifted, the history stays; forgotten, it goes, in that jail only.
        assert_eq!(s.ban_count("192.0.2.1", Some("sshd")).unwrap(), 2);
        s.lift_many("sshd", &["192.0.2.1", "192.0.2.3"], true).unwrap();
        assert_eq!(s.ban_count("192.0.2.1", Some("sshd")).unwrap(), 0);
        assert_eq!(s.ban_count("192.0.2.3", None).unwrap(), 0);
        assert_eq!(s.ban_count("192.0.2.1", None).unwrap(), 1);
        assert_eq!(s.ban_count("192.0.2.2", None).unwrap(), 2);
    }

    #[test]
    fn read_positions_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("db")).unwrap();
        let c = Cursor { dev: 2049, ino: u64::MAX - 3, offset: 12345, head_len: 256, fingerprint: u64::MAX };
        s.save_cursor(Path::new("/var/log/auth.log"), &c).unwrap();
        let saved = s.saved_positions().unwrap();
        assert_eq!(saved.get(Path::new("/var/log/auth.log")), Some(&c));
        assert_eq!(saved.get(Path::new("/var/log/other.log")), None);
    }

    #[test]
    fn a_file_that_is_not_a_database_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        std::fs::write(&db, vec![0x42u8; 8192]).unwrap();
        let e = Store::open(&db).err().unwrap().to_string();
        assert!(e.contains(db.to_str().unwrap()) && e.contains("move it away"), "{e}");
    }

    #[test]
    fn a_schema_1_database_is_upgraded_in_place_and_keeps_its_bans() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("wasmban.sqlite3");
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(
            "CREATE TABLE bans (jail TEXT NOT NULL, ip TEXT NOT NULL, time INTEGER NOT NULL, \
             bantime INTEGER NOT NULL, bancount INTEGER NOT NULL, failures INTEGER NOT NULL, \
             matches TEXT NOT NULL, active INTEGER NOT NULL DEFAULT 1, PRIMARY KEY (jail, ip, time)); \
             INSERT INTO bans VALUES ('sshd', '192.0.2.1', 1000, -1, 1, 3, '[\"old line\"]', 1); \
             PRAGMA user_version = 1;",
        )
        .unwrap();
        drop(conn);
        let store = Store::open(&db).unwrap();
        let bans = store.active_bans(2000).unwrap();
        assert_eq!((bans.len(), bans[0].matches.clone(), bans[0].fields.len()), (1, vec!["old line".into()], 0));
        drop(store);
        // Upgraded once: the next open finds the current schema.
        let version: i64 = Connection::open(&db).unwrap().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let mut store = Store::open(&db).unwrap();
        store.record_ban(&ban("sshd", "192.0.2.2", 1500, -1)).unwrap();
        assert_eq!(store.active_bans(2000).unwrap()[1].fields, [("user".to_string(), "root".to_string())]);
    }

    #[test]
    fn a_schema_2_database_gets_origins_and_its_bans_are_the_filters() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("wasmban.sqlite3");
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(
            "CREATE TABLE bans (jail TEXT NOT NULL, ip TEXT NOT NULL, time INTEGER NOT NULL, \
             bantime INTEGER NOT NULL, bancount INTEGER NOT NULL, failures INTEGER NOT NULL, \
             matches TEXT NOT NULL, active INTEGER NOT NULL DEFAULT 1, fields TEXT NOT NULL DEFAULT '[]', \
             PRIMARY KEY (jail, ip, time)); \
             INSERT INTO bans VALUES ('sshd', '192.0.2.1', 1000, -1, 1, 3, '[]', 1, '[]'); \
             PRAGMA user_version = 2;",
        )
        .unwrap();
        drop(conn);
        let mut store = Store::open(&db).unwrap();
        assert_eq!(store.active_bans(2000).unwrap()[0].origin, Origin::Failures);
        store.record_ban(&BanRecord { origin: Origin::Manual, ..ban("sshd", "192.0.2.2", 1500, -1) }).unwrap();
        let origins: Vec<Origin> = store.active_bans(2000).unwrap().iter().map(|b| b.origin).collect();
        assert_eq!(origins, [Origin::Failures, Origin::Manual]);
    }

    #[test]
    fn the_fleet_outbox_keeps_the_latest_record_of_a_key_until_it_is_published() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("db")).unwrap();
        let rec = |k: &str, v: &str| (k.to_string(), v.to_string());
        s.outbox_put(&[rec("web1.192.0.2.1", "ban"), rec("web1.192.0.2.2", "ban")]).unwrap();
        s.outbox_put(&[rec("web1.192.0.2.1", "lift")]).unwrap();
        // The ban's acknowledgement comes after its lift was kept: the lift stays.
        s.outbox_done(&[rec("web1.192.0.2.1", "ban"), rec("web1.192.0.2.2", "ban")]).unwrap();
        assert_eq!(s.outbox().unwrap(), [rec("web1.192.0.2.1", "lift")]);
        assert_eq!(s.outbox_len().unwrap(), 1);
    }
}
