//! `admind export` and `admind import`: every record of a store as
//! versioned JSON lines, the backup that outlives a backend's on-disk
//! format (sled's changes before its 1.0) and moves data between backends.
//!
//! The file: a header line (`{"format": "admind-export", "version": 1,
//! ...}`), one line per record (`store::Record`, tagged by `kind`), and a
//! trailer line (`{"end": {"records": N, "counts": {...}}}`) that makes a
//! truncated file detectable. Import refuses a file without its trailer, a
//! version it does not know, or a store that is not empty.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::store::{Record, Store};

pub const FORMAT: &str = "admind-export";
/// The version this build writes; it reads this one only.
pub const VERSION: u32 = 1;
/// Records restored per transaction.
const IMPORT_BATCH: usize = 10_000;
/// Longest line read (a record is far smaller; a longer line is not ours).
const LINE_MAX_BYTES: usize = 16 * 1024 * 1024;

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    exported_at: chrono::DateTime<chrono::Utc>,
    /// Which backend the records came from (for the operator's eyes).
    from: String,
}

#[derive(Serialize, Deserialize, Default, PartialEq, Debug)]
pub struct Summary {
    pub records: u64,
    /// Records per kind.
    pub counts: BTreeMap<String, u64>,
}

#[derive(Deserialize)]
struct Trailer {
    end: Summary,
}

/// The configured store for a command run beside (not inside) the daemon
/// (export, import, audit export); `create` (import) makes a new sled store
/// where there is none and writes, so it needs the daemon stopped.
pub fn open_offline(config: &crate::config::Config, create: bool) -> anyhow::Result<Store> {
    if config.store.backend == crate::config::StoreBackend::Sled {
        let data_dir = &config.data_dir;
        if !create && !data_dir.join("db").exists() {
            bail!(
                "no store under {} (is --data-dir right?)",
                data_dir.display()
            );
        }
        return Store::open_sled(&data_dir.join("db")).with_context(|| {
            format!(
                "opening the store under {} (a running daemon holds it: stop it first, or use a copy of the data directory)",
                data_dir.display()
            )
        });
    }
    config.open_store()
}

/// Writes every record of `store` to `out`.
pub fn export(store: &Store, out: &mut impl Write) -> anyhow::Result<Summary> {
    let header = Header {
        format: FORMAT.into(),
        version: VERSION,
        exported_at: chrono::Utc::now(),
        from: store.kind().into(),
    };
    serde_json::to_writer(&mut *out, &header)?;
    out.write_all(b"\n")?;
    let mut summary = Summary::default();
    let mut failed: Option<std::io::Error> = None;
    store.export(&mut |record| {
        *summary.counts.entry(record.kind().to_string()).or_default() += 1;
        summary.records += 1;
        let written = serde_json::to_writer(&mut *out, &record)
            .map_err(std::io::Error::from)
            .and_then(|_| out.write_all(b"\n"));
        match written {
            Ok(()) => Ok(true),
            Err(e) => {
                failed = Some(e);
                Ok(false)
            }
        }
    })?;
    if let Some(e) = failed {
        return Err(e).context("writing the export");
    }
    serde_json::to_writer(&mut *out, &serde_json::json!({ "end": &summary }))?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(summary)
}

/// Restores the export in `path` into `store`, which must be empty. The
/// file is read twice: once to check it whole (header, every record,
/// trailer), then to restore it, so a damaged file changes nothing.
pub fn import_file(store: &Store, path: &std::path::Path) -> anyhow::Result<Summary> {
    if !store.is_empty()? {
        bail!("the store is not empty: import only into a new data directory or database");
    }
    let open = || -> anyhow::Result<std::io::BufReader<std::fs::File>> {
        Ok(std::io::BufReader::new(
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?,
        ))
    };
    read(open()?, None)?;
    read(open()?, Some(store))
}

/// Reads an export; restores it into `store` when given, else only checks it.
fn read(input: impl BufRead, store: Option<&Store>) -> anyhow::Result<Summary> {
    let restore = |batch: Vec<Record>| -> anyhow::Result<()> {
        if let Some(store) = store {
            store.restore(batch)?;
        }
        Ok(())
    };
    let mut lines = input.lines();
    let header: Header = match lines.next() {
        Some(line) => serde_json::from_str(&line.context("reading the header")?)
            .context("the first line is not an admind export header")?,
        None => bail!("the file is empty"),
    };
    if header.format != FORMAT {
        bail!("not an admind export (format {:?})", header.format);
    }
    if header.version != VERSION {
        bail!(
            "export format version {} is not one this build reads (it reads {VERSION})",
            header.version
        );
    }
    let mut seen = Summary::default();
    let mut batch = Vec::with_capacity(IMPORT_BATCH);
    let mut line_no = 1u64;
    for line in lines {
        line_no += 1;
        let line = line.with_context(|| format!("reading line {line_no}"))?;
        if line.len() > LINE_MAX_BYTES {
            bail!("line {line_no} is longer than {LINE_MAX_BYTES} bytes");
        }
        if line.starts_with("{\"end\"") {
            let trailer: Trailer = serde_json::from_str(&line)
                .with_context(|| format!("line {line_no}: the trailer does not decode"))?;
            if !batch.is_empty() {
                restore(std::mem::take(&mut batch))?;
            }
            if trailer.end != seen {
                bail!(
                    "the file's trailer counts {} records, {} were read: the file is damaged",
                    trailer.end.records,
                    seen.records
                );
            }
            return Ok(seen);
        }
        let record: Record = serde_json::from_str(&line)
            .with_context(|| format!("line {line_no} is not a record"))?;
        *seen.counts.entry(record.kind().to_string()).or_default() += 1;
        seen.records += 1;
        batch.push(record);
        if batch.len() == IMPORT_BATCH {
            restore(std::mem::take(&mut batch))?;
        }
    }
    bail!("the file ends without its trailer line: it was cut short; nothing after line {line_no} exists")
}

/// Per kind of record: how many, and a checksum of their content that does
/// not depend on order (the wrapping sum of each record's SHA-256).
pub type Digest = BTreeMap<String, (u64, u128)>;

/// The digest of everything `store` holds.
pub fn digest(store: &Store) -> anyhow::Result<Digest> {
    use sha2::{Digest as _, Sha256};
    let mut out = Digest::new();
    store.export(&mut |record| {
        let kind = record.kind().to_string();
        let bytes = serde_json::to_vec(&record).map_err(std::io::Error::from)?;
        let hash = Sha256::digest(&bytes);
        let mut first = [0u8; 16];
        first.copy_from_slice(&hash[..16]);
        let entry = out.entry(kind).or_insert((0, 0));
        entry.0 += 1;
        entry.1 = entry.1.wrapping_add(u128::from_be_bytes(first));
        Ok(true)
    })?;
    Ok(out)
}

/// `admind store copy`: every record of `from` into `to` (which must be
/// empty), in transactions of `IMPORT_BATCH` records; then both digests,
/// which must agree kind by kind.
pub fn copy(from: &Store, to: &Store) -> anyhow::Result<(Digest, Digest)> {
    if !to.is_empty()? {
        bail!("the destination is not empty: copy only into a new data directory or database");
    }
    let mut batch = Vec::with_capacity(IMPORT_BATCH);
    let mut failed: Option<crate::store::StoreError> = None;
    from.export(&mut |record| {
        batch.push(record);
        if batch.len() == IMPORT_BATCH {
            if let Err(e) = to.restore(std::mem::take(&mut batch)) {
                failed = Some(e);
                return Ok(false);
            }
        }
        Ok(true)
    })?;
    if let Some(e) = failed {
        return Err(e).context("writing to the destination");
    }
    if !batch.is_empty() {
        to.restore(batch).context("writing to the destination")?;
    }
    to.flush()?;
    let (a, b) = (digest(from)?, digest(to)?);
    if a != b {
        bail!("the copy differs from its source: {a:?} != {b:?}");
    }
    Ok((a, b))
}

/// A store named on the command line: a PostgreSQL connection string
/// (`postgres://…`, `postgresql://…`, or `key=value` pairs) or a sled data
/// directory. `writer` for the destination.
pub fn open_named(name: &str, writer: bool) -> anyhow::Result<Store> {
    let is_postgres = name.starts_with("postgres://")
        || name.starts_with("postgresql://")
        || name.contains("dbname=")
        || name.contains("host=");
    if is_postgres {
        return Store::open_postgres(name, 4).context("opening the PostgreSQL store");
    }
    let dir = std::path::Path::new(name);
    if !writer && !dir.join("db").exists() {
        bail!(
            "no store under {} (a data directory holds db/)",
            dir.display()
        );
    }
    Store::open_sled(&dir.join("db")).with_context(|| {
        format!(
            "opening the store under {} (stop the daemon that holds it)",
            dir.display()
        )
    })
}
