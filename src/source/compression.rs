//! Compressed sources (SPEC §8): a `.gz` or `.zst` file, or `source.compression`, is read
//! through its decompressor as a stream, so a compressed file costs no more memory than a
//! plain one and row numbers are those of the text inside.
//!
//! The decompressor sits above the byte counter (see `text.rs`): progress and its ETA are
//! in bytes of the file as stored, the only size known before reading.

use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

/// How a source file is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// `source.compression` when the job sets it, else the path's extension (standard input
    /// has none: only the setting says it is compressed).
    pub fn of(setting: Option<&str>, path: &Path) -> Result<Compression, String> {
        match setting {
            Some("gzip") => Ok(Compression::Gzip),
            Some("zstd") => Ok(Compression::Zstd),
            Some("none") => Ok(Compression::None),
            Some(other) => Err(format!(
                "unknown source.compression `{other}`: use gzip, zstd or none"
            )),
            None => Ok(match path.extension().and_then(|e| e.to_str()) {
                Some(e) if e.eq_ignore_ascii_case("gz") => Compression::Gzip,
                Some(e) if e.eq_ignore_ascii_case("zst") => Compression::Zstd,
                _ => Compression::None,
            }),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }

    /// `input` as it reads decompressed.
    pub fn decompress(self, input: Box<dyn BufRead + Send>) -> io::Result<Box<dyn BufRead + Send>> {
        Ok(match self {
            Compression::None => input,
            // Multi-member: `cat a.gz b.gz`, pigz and bgzip write several members.
            Compression::Gzip => Box::new(BufReader::with_capacity(
                1 << 16,
                Named {
                    inner: flate2::bufread::MultiGzDecoder::new(input),
                    what: self,
                },
            )),
            // zstd's reader goes on through concatenated frames, as `zstd -d` does.
            Compression::Zstd => Box::new(BufReader::with_capacity(
                1 << 16,
                Named {
                    inner: zstd::stream::read::Decoder::with_buffer(input)?,
                    what: self,
                },
            )),
        })
    }
}

/// A decompressor whose errors say what was being decompressed: "incomplete deflate
/// stream" alone does not tell a user that the file is cut short. They are bad input
/// ([`io::ErrorKind::InvalidData`], see [`super::is_bad_input`]): reading the same file
/// again breaks at the same byte.
struct Named<R> {
    inner: R,
    what: Compression,
}

impl<R: Read> Read for Named<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::Interrupted {
                return e; // `read_to_end` and friends retry it
            }
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the {} data is damaged or cut short ({e})",
                    self.what.as_str()
                ),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn read_all(c: Compression, bytes: Vec<u8>) -> io::Result<String> {
        let mut out = String::new();
        c.decompress(Box::new(io::Cursor::new(bytes)))?
            .read_to_string(&mut out)?;
        Ok(out)
    }

    #[test]
    fn the_setting_wins_over_the_extension() {
        let of = |s, p: &str| Compression::of(s, Path::new(p)).unwrap();
        assert_eq!(of(None, "leads.csv.gz"), Compression::Gzip);
        assert_eq!(of(None, "leads.CSV.GZ"), Compression::Gzip);
        assert_eq!(of(None, "leads.jsonl.zst"), Compression::Zstd);
        assert_eq!(of(None, "leads.csv"), Compression::None);
        assert_eq!(of(None, "-"), Compression::None);
        assert_eq!(of(Some("none"), "odd-name.gz"), Compression::None);
        assert_eq!(of(Some("zstd"), "-"), Compression::Zstd);
        assert!(Compression::of(Some("bzip2"), Path::new("x")).is_err());
    }

    #[test]
    fn concatenated_members_and_frames_are_read_to_the_end() {
        let gz = |text: &str| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(text.as_bytes()).unwrap();
            e.finish().unwrap()
        };
        let mut two = gz("a,b\n1,2\n");
        two.extend(gz("3,4\n"));
        assert_eq!(read_all(Compression::Gzip, two).unwrap(), "a,b\n1,2\n3,4\n");

        let mut two = zstd::encode_all(&b"a,b\n1,2\n"[..], 1).unwrap();
        two.extend(zstd::encode_all(&b"3,4\n"[..], 1).unwrap());
        assert_eq!(read_all(Compression::Zstd, two).unwrap(), "a,b\n1,2\n3,4\n");
    }

    #[test]
    fn a_truncated_file_is_an_error_not_a_short_file() {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&b"a,b\n".repeat(10_000)).unwrap();
        let mut gz = e.finish().unwrap();
        gz.truncate(gz.len() / 2);
        let bad = |r: io::Result<String>| r.is_err_and(|e| crate::source::is_bad_input(&e));
        assert!(bad(read_all(Compression::Gzip, gz.clone())));
        let middle = gz.len() / 2;
        gz[middle] ^= 0xFF;
        assert!(bad(read_all(Compression::Gzip, gz)));

        let mut zst = zstd::encode_all(&b"a,b\n".repeat(10_000)[..], 1).unwrap();
        zst.truncate(zst.len() / 2);
        assert!(bad(read_all(Compression::Zstd, zst)));
    }
}
