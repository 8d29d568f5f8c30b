//! A damaged ban database must not keep the daemon from protecting: it is
//! moved aside, a new one is made, and every ban and read position that
//! can still be read from the old one is carried over.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::store::{BanRecord, Existing, Store, StoreError, ban_at, cursor_at, write_ban, write_position};
use crate::tail::Cursor;

/// What was done about a damaged database.
#[derive(Debug, Clone, PartialEq)]
pub struct Recovery {
    /// Where the damaged file went.
    pub moved_to: PathBuf,
    /// What SQLite said was wrong.
    pub damage: String,
    /// Bans (in force or history) carried over.
    pub bans: usize,
    /// Read positions carried over.
    pub positions: usize,
}

impl std::fmt::Display for Recovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the ban database was damaged ({}); it was moved to {} and a new one made, with the {} ban(s) and {} read \
             position(s) that could still be read from it",
            self.damage,
            self.moved_to.display(),
            self.bans,
            self.positions
        )
    }
}

/// Why the database at `path` is damaged, or `None` when it is sound (or
/// absent, or unusable for a reason moving it would not mend).
fn damage(path: &Path) -> Option<String> {
    if !path.exists() {
        return None;
    }
    let conn = match Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE) {
        Ok(conn) => conn,
        Err(e) => return is_damage(&e).then(|| e.to_string()),
    };
    match conn.query_row("PRAGMA quick_check", [], |r| r.get::<_, String>(0)) {
        Ok(answer) if answer == "ok" => None,
        Ok(answer) => Some(answer),
        Err(e) => is_damage(&e).then(|| e.to_string()),
    }
}

fn is_damage(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase))
}

/// Ban rows (with whether each was in force) and read positions.
type Salvaged = (Vec<(BanRecord, bool)>, Vec<(PathBuf, Cursor)>);

/// Every ban row (with whether it was in force) and position that can be
/// read from the damaged file; reading stops at the first unreadable row.
fn salvage(path: &Path) -> Salvaged {
    let mut bans = Vec::new();
    let mut positions = Vec::new();
    let Ok(conn) = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY) else {
        return (bans, positions);
    };
    // A damaged file may hold any schema: schema 1 had no fields, schema
    // 2 no origins.
    let current = "SELECT jail, ip, time, bantime, bancount, failures, matches, fields, origin, active FROM bans";
    let schema2 = "SELECT jail, ip, time, bantime, bancount, failures, matches, fields, 'filter', active FROM bans";
    let schema1 = "SELECT jail, ip, time, bantime, bancount, failures, matches, '[]', 'filter', active FROM bans";
    if let Ok(mut stmt) = conn.prepare(current).or_else(|_| conn.prepare(schema2)).or_else(|_| conn.prepare(schema1))
        && let Ok(mut rows) = stmt.query([])
    {
        while let Ok(Some(row)) = rows.next() {
            if let Ok(ban) = ban_at(row).and_then(|b| Ok((b, row.get::<_, i64>(9)? != 0))) {
                bans.push(ban);
            }
        }
    }
    if let Ok(mut stmt) = conn.prepare("SELECT path, dev, ino, offset, head_len, fingerprint FROM positions")
        && let Ok(mut rows) = stmt.query([])
    {
        while let Ok(Some(row)) = rows.next() {
            if let Ok(position) = row.get::<_, String>(0).and_then(|p| Ok((PathBuf::from(p), cursor_at(row, 1)?))) {
                positions.push(position);
            }
        }
    }
    (bans, positions)
}

impl Store {
    /// [`Store::open`], but a damaged database is moved aside (beside it,
    /// `NAME.damaged-SECONDS`), a new one made and what can be read of the
    /// old one carried over; the [`Recovery`] says what happened, for a
    /// loud message.
    pub fn open_or_recover(path: &Path, now: i64) -> Result<(Store, Option<Recovery>), StoreError> {
        let Some(damage) = damage(path) else { return Ok((Store::open(path)?, None)) };
        let (bans, positions) = salvage(path);
        let moved_to = PathBuf::from(format!("{}.damaged-{now}", path.display()));
        let move_err = |e: std::io::Error| StoreError::Open {
            path: path.to_path_buf(),
            message: format!("it is damaged ({damage}) and could not be moved aside to {}: {e}", moved_to.display()),
        };
        std::fs::rename(path, &moved_to).map_err(move_err)?;
        for suffix in ["-wal", "-shm"] {
            let side = PathBuf::from(format!("{}{suffix}", path.display()));
            if side.exists() {
                std::fs::rename(&side, format!("{}{suffix}", moved_to.display())).map_err(move_err)?;
            }
        }
        let mut store = Store::open(path)?;
        store.insert_salvaged(&bans, &positions)?;
        Ok((store, Some(Recovery { moved_to, damage, bans: bans.len(), positions: positions.len() })))
    }

    fn insert_salvaged(
        &mut self,
        bans: &[(BanRecord, bool)],
        positions: &[(PathBuf, Cursor)],
    ) -> Result<(), StoreError> {
        let path = self.path.clone();
        let err = |e: rusqlite::Error| StoreError::Query {
            path: path.clone(),
            what: "carry bans over",
            message: e.to_string(),
        };
        let tx = self.conn.transaction().map_err(err)?;
        for (ban, active) in bans {
            write_ban(&tx, ban, *active, Existing::Replaced, usize::MAX).map_err(err)?;
        }
        for (file, c) in positions {
            write_position(&tx, file, c, Existing::Replaced).map_err(err)?;
        }
        tx.commit().map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban(ip: &str) -> BanRecord {
        BanRecord {
            jail: "sshd".into(),
            id: ip.into(),
            time: 1000,
            bantime: -1,
            bancount: 1,
            failures: 3,
            matches: vec!["line".into()],
            fields: vec![("user".into(), "root".into())],
            origin: crate::store::Origin::Manual,
        }
    }

    #[test]
    fn a_sound_database_is_opened_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("wasmban.sqlite3");
        Store::open(&db).unwrap().record_ban(&ban("192.0.2.1")).unwrap();
        let (store, recovery) = Store::open_or_recover(&db, 5).unwrap();
        assert!(recovery.is_none());
        assert_eq!(store.active_bans(2000).unwrap().len(), 1);
    }

    #[test]
    fn a_file_that_is_not_a_database_is_moved_aside_and_a_new_one_made() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("wasmban.sqlite3");
        std::fs::write(&db, vec![0x42u8; 8192]).unwrap();
        let (mut store, recovery) = Store::open_or_recover(&db, 77).unwrap();
        let recovery = recovery.expect("a recovery");
        assert_eq!(recovery.moved_to, dir.path().join("wasmban.sqlite3.damaged-77"));
        assert_eq!(std::fs::read(&recovery.moved_to).unwrap(), vec![0x42u8; 8192]);
        assert_eq!(recovery.bans, 0);
        store.record_ban(&ban("192.0.2.9")).unwrap();
    }

    #[test]
    fn bans_are_carried_over_from_a_damaged_database() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("wasmban.sqlite3");
        {
            let mut store = Store::open(&db).unwrap();
            for i in 1..=50 {
                store.record_ban(&ban(&format!("192.0.2.{i}"))).unwrap();
            }
            store.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
        }
        // Damage the last page (an index's, written last): the table
        // itself still reads.
        let mut bytes = std::fs::read(&db).unwrap();
        let page = u16::from_be_bytes([bytes[16], bytes[17]]) as usize;
        let last = bytes.len() - page;
        for b in &mut bytes[last..last + 64] {
            *b = 0xA5;
        }
        std::fs::write(&db, &bytes).unwrap();
        let (store, recovery) = Store::open_or_recover(&db, 1).unwrap();
        let recovery = recovery.expect("the damage is found");
        assert!(recovery.bans > 0, "{recovery}");
        assert_eq!(store.active_bans(2000).unwrap().len(), recovery.bans);
    }
}
