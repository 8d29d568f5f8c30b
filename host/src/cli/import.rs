//! `wasmban import-fail2ban`: take over what fail2ban's database knows,
//! so that switching loses no ban and no counted attack: the bans in
//! force (applied when the daemon next starts), the earlier bans (the
//! history `bantime.increment` counts), and where fail2ban had read each
//! log to (so that lines logged during the switch are read, and lines
//! fail2ban already read are not counted twice). fail2ban's database is
//! opened read-only; everything goes into wasmban's store in one
//! transaction, or nothing does.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use rusqlite::{Connection, OpenFlags};

use crate::cli::Cli;
use crate::config::ini::{Ini, layered_files};
use crate::config::interp::Vars;
use crate::jail::ids;
use crate::store::{BanRecord, Store};
use crate::tail::Cursor;

/// fail2ban's default database.
pub const FAIL2BAN_DB: &str = "/var/lib/fail2ban/fail2ban.sqlite3";
/// The schema of fail2ban 0.10 to 1.1.
const FAIL2BAN_SCHEMA: i64 = 4;

/// Arguments of `wasmban import-fail2ban`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// fail2ban's database; by default the `dbfile` of fail2ban.conf (and
    /// .local) in the configuration directory, else /var/lib/fail2ban/fail2ban.sqlite3.
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
}

/// What fail2ban's database held, read and checked.
#[derive(Debug, Default)]
pub struct Imported {
    /// Every ban, with whether it is in force now.
    pub bans: Vec<(BanRecord, bool)>,
    /// Read positions that still describe the file at their path.
    pub positions: Vec<(PathBuf, Cursor)>,
    /// What was left out, and why.
    pub skipped: Vec<String>,
}

/// The database fail2ban's configuration in `confdir` names, if any.
fn configured_db(confdir: &Path) -> Option<PathBuf> {
    let files = layered_files(&confdir.join("fail2ban"));
    let ini = Ini::read(&files).ok()?;
    let db = ini.get("Definition", "dbfile", &Vars::new()).ok().flatten()?;
    let db = db.trim();
    (db.starts_with('/')).then(|| PathBuf::from(db))
}

/// The first line of `path` with its line end, as fail2ban hashes it; none
/// when the file has no complete first line.
fn first_line(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    let file = std::fs::File::open(path)?;
    let mut line = Vec::new();
    // A first line longer than this cannot be told apart anyway.
    BufReader::new(file.take(1 << 20)).read_until(b'\n', &mut line)?;
    Ok(line.ends_with(b"\n").then_some(line))
}

/// Whether `stored` (the `firstlinemd5` column) is the hash of `line`.
/// The column's name says MD5, but fail2ban probes MD5 with a text
/// argument, which Python 3 refuses, and falls back to SHA-1: what a
/// Python 3 fail2ban stores is SHA-1 (40 hex digits). Both are accepted.
fn first_line_matches(stored: &str, line: &[u8]) -> bool {
    let hex = |digest: &[u8]| digest.iter().map(|b| format!("{b:02x}")).collect::<String>();
    match stored.len() {
        32 => {
            use md5::{Digest, Md5};
            stored.eq_ignore_ascii_case(&hex(&Md5::digest(line)))
        }
        40 => {
            use sha1::{Digest, Sha1};
            stored.eq_ignore_ascii_case(&hex(&Sha1::digest(line)))
        }
        _ => false,
    }
}

/// The columns `table` has.
fn columns(db: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = db.prepare(&format!("PRAGMA table_info({table})"))?;
    stmt.query_map([], |r| r.get::<_, String>(1))?.collect()
}

/// Read fail2ban's database at `path` as of `now`.
pub fn read_fail2ban_db(path: &Path, now: i64) -> anyhow::Result<Imported> {
    if !path.is_file() {
        bail!("{}: no such file; give fail2ban's database with --db", path.display());
    }
    let db = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .with_context(|| format!("opening {} read-only", path.display()))?;
    let not_fail2ban = |why: String| {
        anyhow::anyhow!("{} is not a database fail2ban 0.10 to 1.1 wrote ({why}); nothing was imported", path.display())
    };
    let version: i64 = db
        .query_row("SELECT version FROM fail2banDb LIMIT 1", [], |r| r.get(0))
        .map_err(|e| not_fail2ban(e.to_string()))?;
    if version != FAIL2BAN_SCHEMA {
        return Err(not_fail2ban(format!(
            "its schema is version {version}, this import reads version {FAIL2BAN_SCHEMA}; start fail2ban 0.10 or \
             later on it once, which upgrades it"
        )));
    }
    for (table, wanted) in [
        ("bans", &["jail", "ip", "timeofban", "bantime", "bancount", "data"][..]),
        ("logs", &["jail", "path", "firstlinemd5", "lastfilepos"][..]),
    ] {
        let have = columns(&db, table).map_err(|e| not_fail2ban(e.to_string()))?;
        if let Some(missing) = wanted.iter().find(|c| !have.iter().any(|h| h == *c)) {
            return Err(not_fail2ban(format!("table {table} has no column {missing}")));
        }
    }
    let damaged = |e: rusqlite::Error| {
        anyhow::anyhow!("reading {}: {e}; the database may be damaged, nothing was imported", path.display())
    };
    let mut imported = Imported::default();
    let mut stmt = db
        .prepare("SELECT jail, ip, timeofban, bantime, bancount, CAST(data AS TEXT) FROM bans ORDER BY timeofban")
        .map_err(damaged)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, Option<String>>(5)?,
            ))
        })
        .map_err(damaged)?;
    for row in rows {
        let (jail, ip, time, bantime, bancount, data) = row.map_err(damaged)?;
        let ip = ip.unwrap_or_default();
        let id = match ids::stored_id(&ip) {
            Some(id) => id,
            None => {
                imported.skipped.push(format!("[{jail}] ban of {ip:?}: not an address or an id wasmban can ban"));
                continue;
            }
        };
        // `data` is fail2ban's ticket data: {"matches": [...], "failures": N},
        // and what the filter captured ("user": ...).
        let data: serde_json::Value = data.and_then(|d| serde_json::from_str(&d).ok()).unwrap_or_default();
        let matches = data["matches"]
            .as_array()
            .map(|m| m.iter().filter_map(|l| l.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        let record = BanRecord {
            jail,
            id,
            time,
            bantime,
            bancount: bancount.clamp(1, u32::MAX as i64) as u32,
            failures: data["failures"].as_u64().unwrap_or(0).min(u32::MAX as u64) as u32,
            matches,
            fields: captured_fields(&data),
            // fail2ban keeps no origin: its bans count as found.
            origin: crate::store::Origin::Failures,
        };
        let active = record.active_at(now);
        imported.bans.push((record, active));
    }
    // Where fail2ban stood in each log: kept when the file at that path
    // still starts with the line fail2ban hashed. Two jails on one file
    // share wasmban's position: the earlier one is kept, so that no line
    // is skipped (a line may be read twice, never missed).
    let mut stmt = db.prepare("SELECT jail, path, firstlinemd5, lastfilepos FROM logs").map_err(damaged)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<i64>>(3)?,
            ))
        })
        .map_err(damaged)?;
    let mut positions: BTreeMap<PathBuf, Cursor> = BTreeMap::new();
    for row in rows {
        let (jail, file, md5, pos) = row.map_err(damaged)?;
        let (Some(file), Some(pos)) = (file, pos) else { continue };
        let path = PathBuf::from(&file);
        let skip = |why: String| format!("[{jail}] position in {file}: {why}; wasmban reads that log from its end");
        let head = match first_line(&path) {
            Ok(Some(line)) => line,
            Ok(None) => {
                imported.skipped.push(skip("the file has no complete line now".into()));
                continue;
            }
            Err(e) => {
                imported.skipped.push(skip(e.to_string()));
                continue;
            }
        };
        if !md5.as_deref().is_some_and(|stored| first_line_matches(stored, &head)) {
            imported.skipped.push(skip("the file was rotated since fail2ban read it".into()));
            continue;
        }
        match crate::tail::file::cursor_at(&path, pos.max(0) as u64) {
            Ok(c) => {
                if positions.get(&path).is_none_or(|old| c.offset < old.offset) {
                    positions.insert(path, c);
                }
            }
            Err(e) => imported.skipped.push(skip(e.to_string())),
        }
    }
    imported.positions = positions.into_iter().collect();
    Ok(imported)
}

/// Run `wasmban import-fail2ban`.
/// The filter's captures in fail2ban's ticket data: its text values
/// besides the matches and the failure count.
fn captured_fields(data: &serde_json::Value) -> Vec<(String, String)> {
    let Some(object) = data.as_object() else { return Vec::new() };
    let mut fields: Vec<(String, String)> = object
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "matches" | "failures"))
        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
        .collect();
    fields.sort();
    fields
}

pub fn run(cli: &Cli, args: &ImportArgs) -> anyhow::Result<()> {
    let source = match &args.db {
        Some(db) => db.clone(),
        None => configured_db(&cli.config_dir).unwrap_or_else(|| PathBuf::from(FAIL2BAN_DB)),
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let imported = read_fail2ban_db(&source, now)?;
    crate::daemon::private_dir(&cli.state_dir)?;
    let target = cli.state_dir.join(crate::daemon::STORE_FILE);
    let mut store = Store::open(&target)?;
    let (bans, positions) = store.import(&imported.bans, &imported.positions)?;
    let in_force = imported.bans.iter().filter(|(_, active)| *active).count();
    println!("from {} into {}:", source.display(), target.display());
    println!(
        "  {in_force} ban(s) in force (applied when wasmban starts), {} earlier ban(s) (history for \
         bantime.increment); {bans} new to this store",
        imported.bans.len() - in_force
    );
    println!("  {positions} log read position(s) (of {} usable)", imported.positions.len());
    for s in &imported.skipped {
        println!("  skipped: {s}");
    }
    println!("fail2ban's database was not changed. Stop fail2ban, then start wasmban.");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_line_hash_is_md5_or_sha1_as_fail2ban_stored_it() {
        assert!(first_line_matches("0bee89b07a248e27c83fc3d5951213c1", b"abc\n"));
        assert!(first_line_matches("03CFD743661F07975FA2F1220C5194CBAFF48451", b"abc\n"));
        assert!(!first_line_matches("0bee89b07a248e27c83fc3d5951213c1", b"abd\n"));
        assert!(!first_line_matches("", b"abc\n"));
    }

    #[test]
    fn a_foreign_or_old_database_is_refused_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.sqlite3");
        let db = Connection::open(&path).unwrap();
        db.execute_batch("CREATE TABLE t(x);").unwrap();
        let e = read_fail2ban_db(&path, 0).unwrap_err().to_string();
        assert!(e.contains("not a database fail2ban") && e.contains("nothing was imported"), "{e}");
        db.execute_batch("CREATE TABLE fail2banDb(version INTEGER); INSERT INTO fail2banDb VALUES (2);").unwrap();
        let e = read_fail2ban_db(&path, 0).unwrap_err().to_string();
        assert!(e.contains("version 2") && e.contains("start fail2ban 0.10"), "{e}");
        std::fs::write(dir.path().join("junk"), b"not sqlite at all").unwrap();
        assert!(read_fail2ban_db(&dir.path().join("junk"), 0).is_err());
    }
}
