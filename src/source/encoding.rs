//! Text encodings besides UTF-8. UTF-16 (Excel's "Unicode Text", Windows PowerShell 5.1's
//! `>` and `Out-File`) is transcoded to UTF-8 as the file is read, so every text reader
//! works on UTF-8; UTF-32 and files that are not text at all are refused by the caller.

use std::io::{self, Read};

/// How a text file's bytes encode its characters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// UTF-8, or a single-byte code page whose bytes the readers report as invalid UTF-8.
    #[default]
    Utf8,
    Utf16Le,
    Utf16Be,
    /// Refused: too rare to be worth a decoder.
    Utf32,
}

impl Encoding {
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Utf8 => "UTF-8",
            Encoding::Utf16Le => "UTF-16LE",
            Encoding::Utf16Be => "UTF-16BE",
            Encoding::Utf32 => "UTF-32",
        }
    }
}

/// The encoding of a text file from its first (decompressed) bytes. A byte-order mark
/// decides: `FF FE 00 00` / `00 00 FE FF` are UTF-32, `FF FE` / `FE FF` UTF-16 little /
/// big endian. Without one, UTF-16 is recognised by its NUL bytes in alternate positions
/// (ASCII text, such as any CSV header or JSON key, encodes as a byte and a NUL): NUL in
/// at least half the odd (even) positions and in fewer than one in eight of the even
/// (odd) ones means little (big) endian. Anything else is taken as UTF-8 (whether it is
/// text at all is [`not_text`]'s question).
pub(crate) fn detect(head: &[u8]) -> Encoding {
    if head.starts_with(b"\xff\xfe\0\0") || head.starts_with(b"\0\0\xfe\xff") {
        return Encoding::Utf32;
    }
    if head.starts_with(b"\xff\xfe") {
        return Encoding::Utf16Le;
    }
    if head.starts_with(b"\xfe\xff") {
        return Encoding::Utf16Be;
    }
    let units = head.len() / 2;
    if units == 0 {
        return Encoding::Utf8;
    }
    let nul_even = head.chunks_exact(2).filter(|u| u[0] == 0).count();
    let nul_odd = head.chunks_exact(2).filter(|u| u[1] == 0).count();
    if nul_odd * 2 >= units && nul_even * 8 < units {
        Encoding::Utf16Le
    } else if nul_even * 2 >= units && nul_odd * 8 < units {
        Encoding::Utf16Be
    } else {
        Encoding::Utf8
    }
}

/// Why the (UTF-8) bytes that open a file are not text, or None when they may be. Text
/// files hold no control bytes besides tab, line feed, carriage return, form feed and
/// escape; binary files (executables, archives, spreadsheets, random data) hold plenty,
/// NUL above all. So: a NUL or other control byte in the first line (where a CSV header or
/// a JSON opening is), or control bytes making up more than one in 32 of the bytes, mean
/// binary. A rare stray NUL inside a value further on is read (and kept) as text.
pub(crate) fn not_text(head: &[u8]) -> Option<String> {
    let control = |b: &u8| *b < 0x20 && !matches!(*b, b'\t' | b'\n' | b'\r' | 0x0c | 0x1b);
    let first_line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    if let Some(k) = first_line.iter().position(control) {
        return Some(format!("byte {k} is {:#04x}, a control byte", head[k]));
    }
    let n = head.iter().filter(|b| control(b)).count();
    if n * 32 > head.len() {
        return Some(format!(
            "{n} of its first {} bytes are control bytes",
            head.len()
        ));
    }
    None
}

/// UTF-16 text as UTF-8, streamed. A leading byte-order mark is dropped. A unit that is not
/// valid UTF-16 (an unpaired surrogate, an odd last byte) becomes the byte `FF`, which is
/// never valid UTF-8: the readers then replace and report it like any invalid UTF-8, so
/// nothing is changed silently.
pub(crate) struct Utf16Reader<R: Read> {
    inner: R,
    big_endian: bool,
    /// Input bytes not decoded yet (at most one, between reads).
    raw: Vec<u8>,
    chunk: Vec<u8>,
    out: Vec<u8>,
    pos: usize,
    started: bool,
    eof: bool,
    high: Option<u16>,
}

/// Written in place of a unit that is not valid UTF-16.
const INVALID: u8 = 0xff;

impl<R: Read> Utf16Reader<R> {
    pub fn new(inner: R, big_endian: bool) -> Utf16Reader<R> {
        Utf16Reader {
            inner,
            big_endian,
            raw: Vec::new(),
            chunk: vec![0; 1 << 16],
            out: Vec::new(),
            pos: 0,
            started: false,
            eof: false,
            high: None,
        }
    }

    fn push_char(&mut self, c: u32) {
        let c = char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER);
        let mut b = [0u8; 4];
        self.out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
    }

    fn push_unit(&mut self, u: u16) {
        if !self.started {
            self.started = true;
            if u == 0xfeff {
                return;
            }
        }
        if let Some(h) = self.high.take() {
            if (0xdc00..=0xdfff).contains(&u) {
                let c = 0x10000 + ((u32::from(h) - 0xd800) << 10) + (u32::from(u) - 0xdc00);
                self.push_char(c);
                return;
            }
            self.out.push(INVALID);
        }
        match u {
            0xd800..=0xdbff => self.high = Some(u),
            0xdc00..=0xdfff => self.out.push(INVALID),
            _ => self.push_char(u32::from(u)),
        }
    }

    /// Decodes the next input chunk into `out`.
    fn fill(&mut self) -> io::Result<()> {
        self.out.clear();
        self.pos = 0;
        let n = loop {
            match self.inner.read(&mut self.chunk) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            self.eof = true;
            if self.high.take().is_some() {
                self.out.push(INVALID);
            }
            if !self.raw.is_empty() {
                self.raw.clear();
                self.out.push(INVALID);
            }
            return Ok(());
        }
        let mut raw = std::mem::take(&mut self.raw);
        raw.extend_from_slice(&self.chunk[..n]);
        let whole = raw.len() / 2 * 2;
        for u in raw[..whole].chunks_exact(2) {
            let pair = [u[0], u[1]];
            let unit = if self.big_endian {
                u16::from_be_bytes(pair)
            } else {
                u16::from_le_bytes(pair)
            };
            self.push_unit(unit);
        }
        raw.drain(..whole);
        self.raw = raw;
        Ok(())
    }
}

impl<R: Read> Read for Utf16Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.out.len() {
            if self.eof {
                return Ok(0);
            }
            self.fill()?;
        }
        let n = buf.len().min(self.out.len() - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// `bytes` (UTF-16) as UTF-8, the same way [`Utf16Reader`] streams it.
pub(crate) fn transcode(bytes: &[u8], big_endian: bool) -> Vec<u8> {
    let mut out = Vec::new();
    // Reading from a slice cannot fail.
    let _ = Utf16Reader::new(bytes, big_endian).read_to_end(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16le(s: &str) -> Vec<u8> {
        s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
    }

    #[test]
    fn detects_utf16_with_and_without_bom() {
        let mut bom = b"\xff\xfe".to_vec();
        bom.extend(utf16le("a,b\n1,2\n"));
        assert_eq!(detect(&bom), Encoding::Utf16Le);
        assert_eq!(
            detect(&utf16le("Timestamp,DeviceName\n")),
            Encoding::Utf16Le
        );
        let be: Vec<u8> = "a,b\n"
            .encode_utf16()
            .flat_map(|u| u.to_be_bytes())
            .collect();
        assert_eq!(detect(&be), Encoding::Utf16Be);
        assert_eq!(detect(b"\xff\xfe\0\0a\0\0\0"), Encoding::Utf32);
        assert_eq!(detect(b"a,b\n1,2\n"), Encoding::Utf8);
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(detect(&bytes), Encoding::Utf8);
    }

    #[test]
    fn transcodes_surrogates_and_marks_bad_units() {
        let mut b = b"\xff\xfe".to_vec();
        b.extend(utf16le("x\u{1F600}é\n"));
        assert_eq!(transcode(&b, false), "x\u{1F600}é\n".as_bytes());
        // An unpaired high surrogate, then an odd last byte.
        let b = [0x00, 0xd8, b'a', 0, b'z'];
        assert_eq!(transcode(&b, false), [INVALID, b'a', INVALID]);
        // Split across reads.
        let mut r = Utf16Reader::new(io::Cursor::new(utf16le("héllo")), false);
        r.chunk = vec![0; 3];
        let mut out = String::new();
        r.read_to_string(&mut out).unwrap();
        assert_eq!(out, "héllo");
    }

    #[test]
    fn binary_is_not_text() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert!(not_text(&bytes).is_some());
        assert!(not_text(b"PK\x03\x04\x14\0\0\0").is_some());
        assert!(not_text(b"a,b\n1,\xe9t\xe9\n").is_none());
        assert!(not_text(b"a,b\n1,x\0y\n2,z\n3,w\n4,v\n5,u\n6,t\n7,s\n8,r\n").is_none());
    }
}
