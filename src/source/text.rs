//! A source file's bytes as the readers want them: the file (or standard input), counted for
//! progress, decompressed, then decoded to UTF-8. One place puts the layers in this order,
//! for a run, `plan` and `validate` alike, so all three read a file the same way.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use super::compression::Compression;
use super::encoding::{self, Picked};
use super::{OpenError, SourceSpec, counted};

/// How a source's text is read: what the job asks for, before anything is opened.
#[derive(Debug, Clone, Copy)]
pub struct TextOptions<'a> {
    pub compression: Option<&'a str>,
    pub encoding: Option<&'a str>,
}

impl<'a> TextOptions<'a> {
    pub fn of(spec: &'a SourceSpec) -> TextOptions<'a> {
        TextOptions {
            compression: spec.compression.as_deref(),
            encoding: spec.encoding.as_deref(),
        }
    }
}

/// An opened source's text and how it is read.
pub struct Text {
    pub reader: Box<dyn BufRead + Send>,
    pub compression: Compression,
    pub encoding: Picked,
}

/// Open `path` (`-`: standard input) as UTF-8 text, adding every byte of the file as
/// stored to `bytes_read`.
pub fn open(
    path: &Path,
    opts: TextOptions<'_>,
    bytes_read: Arc<AtomicU64>,
) -> Result<Text, OpenError> {
    let compression = Compression::of(opts.compression, path).map_err(OpenError::Invalid)?;
    let raw = counted(open_raw(path)?, bytes_read);
    let unreadable = |err: io::Error| match err.kind() {
        io::ErrorKind::InvalidInput => OpenError::Invalid(err.to_string()),
        _ => OpenError::Invalid(format!(
            "cannot read the source {} as {}: {err}",
            path.display(),
            compression.as_str()
        )),
    };
    let plain = compression.decompress(raw).map_err(unreadable)?;
    let (reader, encoding) = encoding::decode(plain, opts.encoding).map_err(unreadable)?;
    Ok(Text {
        reader,
        compression,
        encoding,
    })
}

fn open_raw(path: &Path) -> Result<Box<dyn BufRead + Send>, OpenError> {
    if path == Path::new("-") {
        return Ok(Box::new(BufReader::with_capacity(1 << 16, io::stdin())));
    }
    Ok(Box::new(BufReader::with_capacity(
        1 << 16,
        open_file(path)?,
    )))
}

/// The source file at `path`, opened, for text and workbooks alike: a directory is refused
/// here (opening one succeeds on Unix, and its first read would fail with a less clear
/// message).
pub(super) fn open_file(path: &Path) -> Result<File, OpenError> {
    let file = File::open(path).map_err(|err| OpenError::Io {
        path: path.to_path_buf(),
        err,
    })?;
    if file.metadata().map(|m| m.is_dir()).unwrap_or(false) {
        return Err(OpenError::Invalid(format!(
            "the source {} is a directory, not a file",
            path.display()
        )));
    }
    Ok(file)
}

/// How a source file would be read, without reading more than `auto` looks at: for `plan`
/// and the manifest (SPEC §12 R13). `None` for standard input, which cannot be looked at
/// before it is read.
pub fn describe(
    path: &Path,
    opts: TextOptions<'_>,
) -> Result<Option<(Compression, Picked)>, OpenError> {
    if path == Path::new("-") {
        return Ok(None);
    }
    let text = open(path, opts, Arc::default())?;
    Ok(Some((text.compression, text.encoding)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering;

    /// Progress and its ETA compare the bytes read with the file's size as stored: for a
    /// compressed file those are compressed bytes, never the (larger) text inside.
    #[test]
    fn progress_counts_the_bytes_of_the_file_as_stored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leads.csv.gz");
        let text = "name,email\n".to_string() + &"Ann,a@x.io\n".repeat(50_000);
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(text.as_bytes()).unwrap();
        let gz = e.finish().unwrap();
        std::fs::write(&path, &gz).unwrap();
        let counter = Arc::new(AtomicU64::new(0));
        let opts = TextOptions {
            compression: None,
            encoding: Some("auto"),
        };
        let mut opened = open(&path, opts, Arc::clone(&counter)).unwrap();
        assert_eq!(opened.compression, Compression::Gzip);
        let mut out = String::new();
        opened.reader.read_to_string(&mut out).unwrap();
        assert_eq!(out, text);
        assert_eq!(counter.load(Ordering::Relaxed), gz.len() as u64);
    }
}
