//! Text encodings of sources (SPEC §8): which encoding a file is read in — named by the job,
//! or guessed for `auto` — and a reader that turns it into UTF-8 as it streams.
//!
//! The readers (CSV, JSON Lines) split physical lines and check UTF-8 per record, so the
//! decoding happens below them and keeps both: the output is UTF-8 line for line, and a byte
//! sequence the encoding cannot decode becomes a byte `0xFF`, which is never valid UTF-8.
//! The reader's per-record check then rejects just that row, with its row number, and its
//! `raw` text (lossily decoded) has U+FFFD where the bad bytes were. Decoding first also
//! matters for the CSV splitter itself: a Big5 or Shift_JIS character's second byte can be
//! `|` or `\`, so the raw bytes could not be split on an ASCII delimiter.

use std::io::{self, BufRead, Read};

use encoding_rs::{DecoderResult, Encoding, UTF_8};

/// How much of the (decompressed) text `auto` looks at: enough for the detector to see many
/// lines of a customer list, little enough to keep in memory before the first row.
const PREFIX: usize = 64 * 1024;

/// Replaces an undecodable sequence in the output; never valid in UTF-8.
const INVALID: u8 = 0xFF;

/// The encoding a source is read in, and whether `auto` chose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Picked {
    pub encoding: &'static Encoding,
    pub detected: bool,
}

impl Picked {
    /// The encoding's name, as the WHATWG spells it (`UTF-8`, `GBK`, `UTF-16LE`…): what
    /// messages and the manifest say, and a label that reads back as the same encoding.
    pub fn name(&self) -> &'static str {
        self.encoding.name()
    }
}

/// What `source.encoding` (or a manifest's record of it) asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Choice {
    Fixed(&'static Encoding),
    Auto,
}

fn choice(label: Option<&str>) -> Result<Choice, String> {
    match label {
        None => Ok(Choice::Fixed(UTF_8)),
        Some(l) if l.eq_ignore_ascii_case("auto") => Ok(Choice::Auto),
        // WHATWG: the label `utf-16` is UTF-16LE, and its decoder lets a BOM decide.
        Some(l) => Encoding::for_label(l.as_bytes())
            .map(Choice::Fixed)
            .ok_or_else(|| {
                format!(
                    "unknown source.encoding `{l}`: use utf-8, gbk, gb18030, big5, shift_jis, euc-kr, utf-16 or auto"
                )
            }),
    }
}

/// What to do about a record that was not valid in its encoding.
pub(super) fn advice(encoding: &str) -> String {
    if encoding == "UTF-8" {
        "save the file as UTF-8, or set `source.encoding` (`auto` guesses)".to_string()
    } else {
        "check `source.encoding`".to_string()
    }
}

/// `input` as UTF-8 in the encoding `label` names (default UTF-8), and which that was.
///
/// A byte-order mark decides over the label (as it does in a browser); it is removed,
/// except a UTF-8 one, which the readers skip themselves. UTF-8 is passed through as it is:
/// the readers check it per record.
pub fn decode(
    mut input: Box<dyn BufRead + Send>,
    label: Option<&str>,
) -> io::Result<(Box<dyn BufRead + Send>, Picked)> {
    let choice = choice(label).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    if choice == Choice::Fixed(UTF_8) {
        // The common case reads no prefix: not one copy more than before.
        return Ok((
            input,
            Picked {
                encoding: UTF_8,
                detected: false,
            },
        ));
    }
    let mut prefix = Vec::with_capacity(PREFIX);
    (&mut input).take(PREFIX as u64).read_to_end(&mut prefix)?;
    let at_end = prefix.len() < PREFIX;
    let picked = match (Encoding::for_bom(&prefix), choice) {
        (Some((bom, _)), Choice::Auto) => Picked {
            encoding: bom,
            detected: true,
        },
        (Some((bom, _)), Choice::Fixed(_)) => Picked {
            encoding: bom,
            detected: false,
        },
        (None, Choice::Fixed(encoding)) => Picked {
            encoding,
            detected: false,
        },
        (None, Choice::Auto) => Picked {
            encoding: detect(&prefix, at_end),
            detected: true,
        },
    };
    let replayed: Box<dyn BufRead + Send> = Box::new(io::Cursor::new(prefix).chain(input));
    if picked.encoding == UTF_8 {
        return Ok((replayed, picked));
    }
    Ok((Box::new(Transcoder::new(replayed, picked.encoding)), picked))
}

/// `auto` without a byte-order mark: UTF-8 if the prefix is valid UTF-8 (plain ASCII is),
/// else what Firefox's detector makes of it.
fn detect(prefix: &[u8], at_end: bool) -> &'static Encoding {
    match std::str::from_utf8(prefix) {
        Ok(_) => return UTF_8,
        // Only a character cut off by the end of the prefix, not by the end of the file.
        Err(e) if e.error_len().is_none() && !at_end => return UTF_8,
        Err(_) => {}
    }
    let mut detector = chardetng::EncodingDetector::new();
    detector.feed(prefix, at_end);
    detector.guess(None, false)
}

/// A reader of `encoding` text that reads as UTF-8, an undecodable sequence as [`INVALID`].
struct Transcoder<R> {
    input: R,
    decoder: encoding_rs::Decoder,
    out: Vec<u8>,
    pos: usize,
    done: bool,
}

impl<R: BufRead> Transcoder<R> {
    fn new(input: R, encoding: &'static Encoding) -> Transcoder<R> {
        Transcoder {
            input,
            // The BOM was looked at already; this removes it from the text.
            decoder: encoding.new_decoder_with_bom_removal(),
            out: Vec::new(),
            pos: 0,
            done: false,
        }
    }

    /// Decode the next piece of input into `out` (empty only at the end).
    fn refill(&mut self) -> io::Result<()> {
        self.out.clear();
        self.pos = 0;
        while self.out.is_empty() && !self.done {
            let src = self.input.fill_buf()?;
            let last = src.is_empty();
            let need = self
                .decoder
                .max_utf8_buffer_length_without_replacement(src.len())
                .unwrap_or(src.len() * 3 + 16)
                .max(16);
            // Sized once for this piece and written through `w`: a malformed sequence
            // costs one byte of output, not a fresh zeroing of the whole buffer (which made
            // a file of undecodable bytes quadratic: ~196 KB zeroed per bad byte).
            self.out.resize(need, 0);
            let (mut consumed, mut w) = (0, 0);
            loop {
                let (result, read, written) = self.decoder.decode_to_utf8_without_replacement(
                    &src[consumed..],
                    &mut self.out[w..],
                    last,
                );
                consumed += read;
                w += written;
                match result {
                    DecoderResult::InputEmpty => break,
                    DecoderResult::OutputFull => {
                        let len = self.out.len();
                        self.out.resize(len + need, 0);
                    }
                    DecoderResult::Malformed(_, _) => {
                        if w == self.out.len() {
                            self.out.push(0);
                        }
                        self.out[w] = INVALID;
                        w += 1;
                    }
                }
            }
            self.out.truncate(w);
            self.input.consume(consumed);
            self.done = last;
        }
        Ok(())
    }
}

impl<R: BufRead> Read for Transcoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Transcoder<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.out.len() {
            self.refill()?;
        }
        Ok(&self.out[self.pos..])
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.out.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(bytes: &[u8], label: &str) -> (Vec<u8>, &'static str, bool) {
        let (mut r, picked) =
            decode(Box::new(io::Cursor::new(bytes.to_vec())), Some(label)).unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        (out, picked.name(), picked.detected)
    }

    fn encoded(text: &str, encoding: &'static Encoding) -> Vec<u8> {
        let (bytes, _, unmappable) = encoding.encode(text);
        assert!(!unmappable, "{text} in {}", encoding.name());
        bytes.into_owned()
    }

    #[test]
    fn named_encodings_decode_line_for_line() {
        let text = "姓名,城市\n张伟,北京\n";
        let gbk = encoded(text, encoding_rs::GBK);
        assert_eq!(
            decoded(&gbk, "gbk"),
            (text.as_bytes().to_vec(), "GBK", false)
        );
        // A four-byte GB18030 sequence (U+20000, a CJK extension B character).
        assert_eq!(
            encoded("𠀀", encoding_rs::GB18030),
            [0x95, 0x32, 0x82, 0x36]
        );
        let four = "名\n𠀀,x\n";
        let bytes = encoded(four, encoding_rs::GB18030);
        assert_eq!(decoded(&bytes, "gb18030").0, four.as_bytes());
        let sjis = encoded("名前|東京\n", encoding_rs::SHIFT_JIS);
        assert_eq!(decoded(&sjis, "shift_jis").0, "名前|東京\n".as_bytes());
    }

    #[test]
    fn an_undecodable_sequence_is_invalid_utf8_in_its_line_only() {
        // 0x81 then a newline: a GBK lead byte without its trail; the newline survives.
        let mut bytes = encoded("a\n张", encoding_rs::GBK);
        bytes.extend(b"\x81\n");
        bytes.extend(encoded("伟\n", encoding_rs::GBK));
        let (out, _, _) = decoded(&bytes, "gbk");
        assert_eq!(
            out,
            [&b"a\n"[..], "张".as_bytes(), b"\xFF\n", "伟\n".as_bytes()].concat()
        );
        assert_eq!(String::from_utf8_lossy(&out), "a\n张\u{FFFD}\n伟\n");
        // An unpaired surrogate in UTF-16, and a sequence cut off at the end of the file.
        let (out, name, _) = decoded(b"\xFF\xFEa\x00\x00\xD8\n\x00b", "utf-16");
        assert_eq!((out.as_slice(), name), (&b"a\xFF\n\xFF"[..], "UTF-16LE"));
    }

    #[test]
    fn a_run_of_undecodable_bytes_is_one_marker_each_across_buffer_refills() {
        // 300,000 bytes no GBK character starts with, a character in the middle: more
        // than one refill of the input buffer, and output that outgrows its first size.
        let mut bytes = vec![0xFFu8; 150_000];
        bytes.extend(encoded("张", encoding_rs::GBK));
        bytes.extend(vec![0xFFu8; 150_000]);
        let input = io::BufReader::with_capacity(1 << 16, io::Cursor::new(bytes));
        let (mut r, _) = decode(Box::new(input), Some("gbk")).unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        let expected = [
            vec![INVALID; 150_000],
            "张".as_bytes().to_vec(),
            vec![INVALID; 150_000],
        ];
        assert_eq!(out.len(), 300_003);
        assert!(out == expected.concat());
    }

    #[test]
    fn a_bom_decides_the_byte_order() {
        let le = [&[0xFF, 0xFE][..], &encoded_utf16("名,x\n", false)].concat();
        let be = [&[0xFE, 0xFF][..], &encoded_utf16("名,x\n", true)].concat();
        assert_eq!(
            decoded(&le, "utf-16"),
            ("名,x\n".as_bytes().to_vec(), "UTF-16LE", false)
        );
        assert_eq!(
            decoded(&be, "utf-16"),
            ("名,x\n".as_bytes().to_vec(), "UTF-16BE", false)
        );
        assert_eq!(
            decoded(&be, "auto"),
            ("名,x\n".as_bytes().to_vec(), "UTF-16BE", true)
        );
    }

    fn encoded_utf16(text: &str, big_endian: bool) -> Vec<u8> {
        text.encode_utf16()
            .flat_map(|u| {
                if big_endian {
                    u.to_be_bytes()
                } else {
                    u.to_le_bytes()
                }
            })
            .collect()
    }

    #[test]
    fn auto_prefers_utf8_when_it_is_valid() {
        assert_eq!(decoded("名,x\n".as_bytes(), "auto").1, "UTF-8");
        assert_eq!(decoded(b"plain,ascii\n", "auto").1, "UTF-8");
        // A character cut by the end of the 64 KiB prefix is still UTF-8.
        let mut long = "é".repeat(PREFIX / 2 + 7).into_bytes();
        long.insert(0, b'x');
        assert_eq!(decoded(&long, "auto").1, "UTF-8");
    }

    #[test]
    fn labels_are_the_whatwg_ones_and_auto() {
        assert_eq!(choice(Some("AUTO")), Ok(Choice::Auto));
        assert_eq!(choice(Some("gbk")), Ok(Choice::Fixed(encoding_rs::GBK)));
        assert_eq!(
            choice(Some("euc-kr")),
            Ok(Choice::Fixed(encoding_rs::EUC_KR))
        );
        // What a manifest records reads back as the same encoding.
        assert_eq!(
            choice(Some("UTF-16BE")),
            Ok(Choice::Fixed(encoding_rs::UTF_16BE))
        );
        let err = decode(Box::new(io::Cursor::new(Vec::new())), Some("klingon")).err();
        assert!(
            err.unwrap()
                .to_string()
                .contains("unknown source.encoding `klingon`")
        );
    }
}
