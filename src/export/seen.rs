//! What an export has written, id by id, so that it never assumes the API's sort order
//! (SPEC §11, §12 R17): every customer id written and every cursor asked for, kept in a
//! sidecar file beside each window's partial output, appended with the page and made
//! durable before the checkpoint that counts it, and cut back with the checkpoint on a
//! resume. In memory the ids are one map for the whole export (id → the window that wrote
//! it): about 60 bytes per exported customer (measured, README Performance).
//!
//! With it: a customer two sub-windows both return (their boundaries may overlap; the API
//! does not say whether they are inclusive) is written once; a page whose ids this window
//! all wrote before, or a cursor it already asked for, is a real loop, and stops the export.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A record of the sidecar: a tag byte, then a little-endian i64.
const ID: u8 = b'i';
const CURSOR: u8 = b'c';
const RECORD: usize = 9;

/// The sidecar of a window's partial output.
pub fn sidecar_of(partial: &Path) -> PathBuf {
    let mut name = partial.as_os_str().to_owned();
    name.push(".seen");
    PathBuf::from(name)
}

/// Every id written so far, and which window wrote it.
#[derive(Debug, Default)]
pub struct Seen {
    ids: Mutex<HashMap<i64, usize>>,
}

/// What the sidecar of one window held when the export (re)started.
#[derive(Debug, Default)]
pub struct WindowSeen {
    pub cursors: Vec<i64>,
}

/// How a customer on a page stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Not written yet: this window writes it.
    Fresh,
    /// This very window wrote it before.
    Again,
    /// Another window wrote it (an overlap of their boundaries).
    Elsewhere,
}

impl Seen {
    /// Load a window's sidecar, cut back to the `len` its checkpoint counts.
    pub fn load(&self, window: usize, sidecar: &Path, len: u64) -> io::Result<WindowSeen> {
        let mut bytes = Vec::new();
        match File::open(sidecar) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if (bytes.len() as u64) < len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} holds {} bytes, fewer than the {len} the checkpoint counts: it was changed since; start a new run",
                    sidecar.display(),
                    bytes.len()
                ),
            ));
        }
        bytes.truncate(len as usize);
        let mut out = WindowSeen::default();
        let mut ids = self.ids.lock().expect("seen lock");
        for record in bytes.chunks_exact(RECORD) {
            let value = i64::from_le_bytes(record[1..].try_into().expect("8 bytes"));
            match record[0] {
                ID => {
                    ids.insert(value, window);
                }
                CURSOR => out.cursors.push(value),
                other => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{} is corrupt (record tag {other})", sidecar.display()),
                    ));
                }
            }
        }
        Ok(out)
    }

    /// Claim `id` for `window`: only the first window to claim an id writes it.
    pub fn claim(&self, id: i64, window: usize) -> Claim {
        let mut ids = self.ids.lock().expect("seen lock");
        match ids.get(&id) {
            None => {
                ids.insert(id, window);
                Claim::Fresh
            }
            Some(w) if *w == window => Claim::Again,
            Some(_) => Claim::Elsewhere,
        }
    }

    /// Forget claims a window made for a page it did not write after all (it stopped).
    pub fn release(&self, claimed: &[i64]) {
        let mut ids = self.ids.lock().expect("seen lock");
        for id in claimed {
            ids.remove(id);
        }
    }

    /// The largest id written (informational: `last_id` in the state).
    pub fn max_id(&self) -> Option<i64> {
        self.ids.lock().expect("seen lock").keys().max().copied()
    }
}

/// The sidecar records of one page: the cursor it was asked with, then its new ids.
pub fn records(cursor: Option<i64>, ids: &[i64]) -> Vec<u8> {
    let mut out = Vec::with_capacity((ids.len() + 1) * RECORD);
    if let Some(c) = cursor {
        out.push(CURSOR);
        out.extend_from_slice(&c.to_le_bytes());
    }
    for id in ids {
        out.push(ID);
        out.extend_from_slice(&id.to_le_bytes());
    }
    out
}

/// Append a page's records and make them durable.
pub fn append(file: &mut File, records: &[u8], durable: bool) -> io::Result<()> {
    file.write_all(records)?;
    if durable {
        file.sync_data()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sidecar_is_read_back_to_the_checkpointed_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = sidecar_of(&dir.path().join("out.csv.partial"));
        let mut bytes = records(None, &[7, 3]);
        let kept = bytes.len() as u64;
        bytes.extend(records(Some(3), &[9]));
        std::fs::write(&path, &bytes).unwrap();
        let seen = Seen::default();
        let w = seen.load(0, &path, kept).unwrap();
        assert!(w.cursors.is_empty());
        assert_eq!(seen.claim(7, 0), Claim::Again);
        assert_eq!(seen.claim(7, 1), Claim::Elsewhere);
        assert_eq!(
            seen.claim(9, 0),
            Claim::Fresh,
            "past the checkpoint: not written"
        );
        let all = Seen::default();
        let w = all.load(2, &path, bytes.len() as u64).unwrap();
        assert_eq!(w.cursors, vec![3]);
        assert_eq!(all.max_id(), Some(9));
        assert!(
            Seen::default()
                .load(0, &path, bytes.len() as u64 + 9)
                .is_err()
        );
    }
}
