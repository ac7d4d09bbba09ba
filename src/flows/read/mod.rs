//! Connection logs → [`Conn`]s, streaming: Zeek `conn.log` as TSV or JSON lines, and
//! NetFlow/IPFIX as `nfdump -o csv` writes it. Gzip or plain is told from the magic bytes
//! (concatenated gzip members, as rotated logs often are, are read through), the format from
//! the content.
//!
//! One line buffer is reused for the whole file and each [`Conn`] borrows from it, so a good
//! line costs no allocation. A line is rejected only when its identity is unreadable (no or an
//! invalid `ts`, originator or responder address, or a line too broken to split); any other
//! malformed value is `None` in the [`Conn`] and counted as a warning. A line longer than
//! [`MAX_LINE`] is skipped to its end without being held, and rejected.

mod fields;
mod nfdump;
mod zeek_json;
mod zeek_tsv;

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::net::IpAddr;
use std::path::Path;

use serde::Serialize;

use super::Conn;
use crate::sources::RowError;

/// The longest line kept; a longer one is skipped to its end and rejected.
pub const MAX_LINE: usize = 64 * 1024;
/// How many problems [`ReadStats::errors`] keeps (the counts go on).
pub const MAX_ERRORS: usize = 100;

const BUF_SIZE: usize = 128 * 1024;

/// The formats [`read_log`] knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Zeek's ASCII writer: `#separator`, `#fields` header blocks, tab-separated values.
    ZeekTsv,
    /// Zeek's JSON writer: one object a line (`"id.orig_h": ...`).
    ZeekJson,
    /// `nfdump -o csv` (1.6's `ts,te,td,sa,da,...` and 1.7's `firstSeen,duration,...`),
    /// with its trailing `Summary` block.
    NfdumpCsv,
}

impl LogFormat {
    /// The name used in messages and `--json`.
    pub fn name(self) -> &'static str {
        match self {
            LogFormat::ZeekTsv => "zeek_tsv",
            LogFormat::ZeekJson => "zeek_json",
            LogFormat::NfdumpCsv => "nfdump_csv",
        }
    }
}

/// What reading one log gave.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReadStats {
    /// The format found; `None` for a log with no line at all.
    pub format: Option<LogFormat>,
    /// Every line read, headers and blank lines included.
    pub lines: u64,
    /// Lines handed to the sink.
    pub connections: u64,
    /// Lines that are not headers and gave no connection.
    pub rejected: u64,
    /// Malformed values that did not cost their line its connection (each is `None`).
    pub warnings: u64,
    /// The first [`MAX_ERRORS`] problems, rejected lines and warnings, as `file:line`.
    pub errors: Vec<RowError>,
    /// The gzip stream ended early or was corrupt: what came before was delivered.
    pub truncated: bool,
    /// Bytes of (decompressed) input read, line ends and any header put before it included:
    /// how far a log was read (the watch job's mark of a gzip file).
    #[serde(skip)]
    pub bytes: u64,
}

/// Why a log could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{name}: {source}")]
    Open { name: String, source: io::Error },
    #[error("{name}: read error after line {line}: {source}")]
    Io {
        name: String,
        line: u64,
        source: io::Error,
    },
    #[error(
        "{name}: not a connection log outwatch knows (Zeek conn.log as TSV or JSON, nfdump -o csv); its first line is `{first_line}`"
    )]
    UnknownFormat { name: String, first_line: String },
    #[error("{name}: a Zeek `{path}` log, not a conn log")]
    NotConnLog { name: String, path: String },
    #[error("{name}: not a log file but {kind}: outwatch flows reads regular files, plain or gzip")]
    NotAFile { name: String, kind: &'static str },
}

/// What a file that is not a regular file is, in words (`a folder`, `a FIFO`, ...).
pub fn file_kind(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a folder"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

/// Opens `path` for reading only when it is a regular file: opened without blocking (a FIFO
/// without a writer would wait for ever) and checked on the open handle, so what is read is
/// what was checked.
pub fn open_regular(path: &Path) -> Result<File, ReadError> {
    use std::os::unix::fs::OpenOptionsExt;
    let name = path.display().to_string();
    let open = |source| ReadError::Open {
        name: name.clone(),
        source,
    };
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(open)?;
    let t = f.metadata().map_err(open)?.file_type();
    if !t.is_file() {
        return Err(ReadError::NotAFile {
            name,
            kind: file_kind(&t),
        });
    }
    Ok(f)
}

/// A malformed value: what is wrong and the value as written (for the message).
#[derive(Debug)]
pub(crate) struct Problem<'a> {
    pub what: &'static str,
    pub value: Cow<'a, [u8]>,
}

impl<'a> Problem<'a> {
    pub(crate) fn new(what: &'static str, value: &'a [u8]) -> Self {
        Problem {
            what,
            value: Cow::Borrowed(value),
        }
    }
    pub(crate) fn bare(what: &'static str) -> Self {
        Problem {
            what,
            value: Cow::Borrowed(&[]),
        }
    }
}

/// Malformed non-identity values of one line: how many, and the first.
#[derive(Debug, Default)]
pub(crate) struct Warnings<'a> {
    pub count: u32,
    pub first: Option<Problem<'a>>,
}

impl<'a> Warnings<'a> {
    pub(crate) fn add(&mut self, p: Problem<'a>) {
        self.count += 1;
        if self.first.is_none() {
            self.first = Some(p);
        }
    }
}

/// The fields of a delimited row, filed by slot: `vals[s]` is the field of the column whose
/// `slot` is `s`, and `got[s]` says whether the row had that column (a slot of `N` or more
/// files nothing). Splits `line` at `sep` (one byte or more; empty: the line is one field) and
/// stops after column `last_needed`.
#[inline]
pub(crate) fn fill_slots<'a, const N: usize>(
    line: &'a [u8],
    sep: &[u8],
    slot: &[u8],
    last_needed: usize,
) -> ([&'a [u8]; N], [bool; N]) {
    let mut vals: [&[u8]; N] = [&[]; N];
    let mut got = [false; N];
    let mut rest = line;
    let mut col = 0usize;
    let one = match sep {
        [b] => Some(*b),
        _ => None,
    };
    loop {
        let (field, next) = match one {
            Some(b) => match memchr::memchr(b, rest) {
                Some(i) => (&rest[..i], Some(&rest[i + 1..])),
                None => (rest, None),
            },
            None => match memchr::memmem::find(rest, sep) {
                Some(i) if !sep.is_empty() => (&rest[..i], Some(&rest[i + sep.len()..])),
                _ => (rest, None),
            },
        };
        if let Some(&s) = slot.get(col)
            && let Some(v) = vals.get_mut(s as usize)
        {
            *v = field;
            got[s as usize] = true;
        }
        col += 1;
        match next {
            Some(n) if col <= last_needed => rest = n,
            _ => break,
        }
    }
    (vals, got)
}

/// The identity of a delimited row: its start time (read by `read_ts`) and both addresses, or
/// the problem with the first that does not read; `what` names each, in that order.
#[inline]
pub(crate) fn identity<'a>(
    [ts, orig, resp]: [&'a [u8]; 3],
    read_ts: fn(&[u8]) -> Option<i64>,
    what: [&'static str; 3],
) -> Result<(i64, IpAddr, IpAddr), Problem<'a>> {
    let ts_us = read_ts(ts).ok_or_else(|| Problem::new(what[0], ts))?;
    let orig = fields::addr(orig).ok_or_else(|| Problem::new(what[1], orig))?;
    let resp = fields::addr(resp).ok_or_else(|| Problem::new(what[2], resp))?;
    Ok((ts_us, orig, resp))
}

/// Whether a delimited row ended before a column its header names: `got` the slots the row
/// filled, `present` the slots the header has.
#[inline]
pub(crate) fn short_row(got: &[bool], present: &[bool]) -> bool {
    got.iter().zip(present).any(|(g, p)| *p && !*g)
}

/// What a format parser made of one line.
pub(crate) enum Parsed<'a> {
    Conn(Conn<'a>, Warnings<'a>),
    /// A header, comment, blank or summary line.
    Skip,
    Reject(Problem<'a>),
}

enum Parser {
    Tsv(zeek_tsv::ZeekTsv),
    Json(zeek_json::ZeekJson),
    Nfdump(nfdump::Nfdump),
}

impl Parser {
    fn parse<'a>(&'a mut self, line: &'a [u8]) -> Parsed<'a> {
        match self {
            Parser::Tsv(p) => p.parse(line),
            Parser::Json(p) => p.parse(line),
            Parser::Nfdump(p) => p.parse(line),
        }
    }
}

/// Reads one log from `input`, handing each connection to `sink`. `name` names the log in
/// errors and locations (`name:line`).
pub fn read_log(
    input: impl Read,
    name: &str,
    sink: &mut dyn FnMut(&Conn<'_>),
) -> Result<ReadStats, ReadError> {
    let mut raw = BufReader::with_capacity(BUF_SIZE, input);
    let gzip = loop {
        match raw.fill_buf() {
            Ok(b) => break b.starts_with(&[0x1f, 0x8b]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(ReadError::Io {
                    name: name.to_string(),
                    line: 0,
                    source,
                });
            }
        }
    };
    if gzip {
        let dec = flate2::bufread::MultiGzDecoder::new(raw);
        read_lines(BufReader::with_capacity(BUF_SIZE, dec), name, true, sink)
    } else {
        read_lines(raw, name, false, sink)
    }
}

/// [`read_log`] on a file; `-` reads standard input.
pub fn read_path(path: &Path, sink: &mut dyn FnMut(&Conn<'_>)) -> Result<ReadStats, ReadError> {
    let name = path.display().to_string();
    if path == Path::new("-") {
        return read_log(io::stdin().lock(), "-", sink);
    }
    let f = open_regular(path)?;
    read_log(f, &name, sink)
}

/// Reads the part of a log file that follows its first `from` bytes (of the decompressed
/// stream, for gzip; up to `to` when given), behind `header` (the log's own header lines,
/// which the skipped part held). How the watch job reads what was added to a log since its
/// last run, in the log or in the rotated (perhaps compressed) copy of it. Line numbers in
/// messages count from the header.
pub fn read_path_from(
    path: &Path,
    header: &[u8],
    from: u64,
    to: Option<u64>,
    sink: &mut dyn FnMut(&Conn<'_>),
) -> Result<ReadStats, ReadError> {
    use std::io::{Seek, SeekFrom};
    let name = path.display().to_string();
    let io_err = |source| ReadError::Io {
        name: name.clone(),
        line: 0,
        source,
    };
    let mut f = open_regular(path)?;
    let mut magic = [0u8; 2];
    let mut got = 0;
    while got < 2 {
        match f.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err(e)),
        }
    }
    let limit = to.map_or(u64::MAX, |t| t.saturating_sub(from));
    let head = io::Cursor::new(header);
    if got == 2 && magic == [0x1f, 0x8b] {
        f.seek(SeekFrom::Start(0)).map_err(io_err)?;
        let mut dec = flate2::bufread::MultiGzDecoder::new(BufReader::with_capacity(BUF_SIZE, f));
        if let Err(e) = io::copy(&mut (&mut dec).take(from), &mut io::sink()) {
            if !is_cut(&e) {
                return Err(io_err(e));
            }
            let mut t = Tally {
                name: &name,
                stats: ReadStats::default(),
            };
            t.cut(0, false, &e);
            return Ok(t.stats);
        }
        let body = BufReader::with_capacity(BUF_SIZE, head.chain(dec.take(limit)));
        return read_lines(body, &name, true, sink);
    }
    f.seek(SeekFrom::Start(from)).map_err(io_err)?;
    let body = BufReader::with_capacity(BUF_SIZE, head.chain(f.take(limit)));
    read_lines(body, &name, false, sink)
}

/// One line from [`LineReader::next`].
enum Line<'b> {
    /// The line, without its `\n` / `\r\n`.
    Text(&'b [u8]),
    /// Longer than [`MAX_LINE`]: skipped to its end.
    TooLong,
    End,
}

/// Lines of a buffered reader. A line that lies whole in the reader's buffer (nearly all) is
/// handed out from there without a copy and consumed on the next call; one that straddles a
/// buffer refill is gathered in `buf`, up to [`MAX_LINE`].
struct LineReader<T> {
    r: BufReader<T>,
    buf: Vec<u8>,
    /// Bytes of the line handed out last, still to consume.
    pending: usize,
    /// Bytes consumed so far.
    consumed: u64,
}

fn without_cr(l: &[u8]) -> &[u8] {
    l.strip_suffix(b"\r").unwrap_or(l)
}

impl<T: Read> LineReader<T> {
    fn next(&mut self) -> io::Result<Line<'_>> {
        self.r.consume(std::mem::take(&mut self.pending));
        self.buf.clear();
        let found = loop {
            match self.r.fill_buf() {
                Ok([]) => return Ok(Line::End),
                Ok(b) => break memchr::memchr(b'\n', b),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        if let Some(i) = found
            && i <= MAX_LINE
        {
            self.pending = i + 1;
            self.consumed += i as u64 + 1;
            return Ok(Line::Text(without_cr(&self.r.buffer()[..i])));
        }
        let mut too_long = false;
        loop {
            let avail = match self.r.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if avail.is_empty() {
                // A last line without its line end.
                return Ok(if too_long {
                    Line::TooLong
                } else {
                    Line::Text(without_cr(&self.buf))
                });
            }
            let (take, found) = match memchr::memchr(b'\n', avail) {
                Some(i) => (i, true),
                None => (avail.len(), false),
            };
            if !too_long {
                if self.buf.len() + take <= MAX_LINE {
                    self.buf.extend_from_slice(&avail[..take]);
                } else {
                    too_long = true;
                    self.buf.clear();
                }
            }
            self.r.consume(take + found as usize);
            self.consumed += (take + found as usize) as u64;
            if found {
                return Ok(if too_long {
                    Line::TooLong
                } else {
                    Line::Text(without_cr(&self.buf))
                });
            }
        }
    }
}

struct Tally<'n> {
    name: &'n str,
    stats: ReadStats,
}

impl Tally<'_> {
    fn note(&mut self, line: u64, kind: &str, p: &Problem<'_>, more: u32) {
        if self.stats.errors.len() >= MAX_ERRORS {
            return;
        }
        let mut message = format!("{kind}: {}", p.what);
        if !p.value.is_empty() {
            let v = String::from_utf8_lossy(&p.value);
            message.push_str(&format!(" `{}`", crate::text::clip(&v, 60)));
        }
        if more > 0 {
            message.push_str(&format!(" (and {more} more malformed values)"));
        }
        self.stats.errors.push(RowError {
            location: format!("{}:{line}", self.name),
            message,
        });
    }

    fn reject(&mut self, line: u64, p: &Problem<'_>) {
        self.stats.rejected += 1;
        self.note(line, "rejected", p, 0);
    }

    /// The gzip stream ended early or is corrupt at line `line`: what came before stays
    /// delivered; a `partial` line is lost with the stream.
    fn cut(&mut self, line: u64, partial: bool, e: &io::Error) {
        self.stats.truncated = true;
        if partial {
            self.stats.lines += 1;
            self.reject(
                line,
                &Problem::bare("line cut off by the end of the gzip stream"),
            );
        }
        if self.stats.errors.len() < MAX_ERRORS {
            self.stats.errors.push(RowError {
                location: format!("{}:{line}", self.name),
                message: format!("the gzip stream ends early or is corrupt: {e}"),
            });
        }
    }
}

fn detect(line: &[u8], name: &str) -> Result<Parser, ReadError> {
    if line.starts_with(b"#separator") || line.starts_with(b"#fields") {
        return Ok(Parser::Tsv(zeek_tsv::ZeekTsv::new()));
    }
    if fields::trim(line).starts_with(b"{") {
        return Ok(Parser::Json(zeek_json::ZeekJson::new()));
    }
    if let Some(p) = nfdump::Nfdump::from_header(line) {
        return Ok(Parser::Nfdump(p));
    }
    Err(ReadError::UnknownFormat {
        name: name.to_string(),
        first_line: crate::text::clip(&String::from_utf8_lossy(line), 80),
    })
}

fn read_lines<T: Read>(
    r: BufReader<T>,
    name: &str,
    gzip: bool,
    sink: &mut dyn FnMut(&Conn<'_>),
) -> Result<ReadStats, ReadError> {
    let mut lines = LineReader {
        r,
        buf: Vec::with_capacity(1024),
        pending: 0,
        consumed: 0,
    };
    let mut t = Tally {
        name,
        stats: ReadStats::default(),
    };
    let mut parser: Option<Parser> = None;
    loop {
        let line_no = t.stats.lines + 1;
        let got = match lines.next() {
            Ok(l) => l,
            Err(e) if gzip && is_cut(&e) => {
                t.cut(line_no, !lines.buf.is_empty(), &e);
                break;
            }
            Err(source) => {
                return Err(ReadError::Io {
                    name: name.to_string(),
                    line: t.stats.lines,
                    source,
                });
            }
        };
        let mut text = match got {
            Line::End => break,
            Line::TooLong => {
                t.stats.lines += 1;
                t.reject(line_no, &Problem::bare("line longer than 64 KiB"));
                continue;
            }
            Line::Text(text) => text,
        };
        t.stats.lines += 1;
        if t.stats.lines == 1 {
            text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
        }
        if text.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        if parser.is_none() {
            let p = detect(text, name)?;
            t.stats.format = Some(match p {
                Parser::Tsv(_) => LogFormat::ZeekTsv,
                Parser::Json(_) => LogFormat::ZeekJson,
                Parser::Nfdump(_) => LogFormat::NfdumpCsv,
            });
            parser = Some(p);
        }
        let Some(p) = parser.as_mut() else {
            break;
        };
        match p.parse(text) {
            Parsed::Conn(c, w) => {
                t.stats.connections += 1;
                if w.count > 0 {
                    t.stats.warnings += w.count as u64;
                    if let Some(first) = &w.first {
                        t.note(line_no, "warning", first, w.count - 1);
                    }
                }
                sink(&c);
            }
            Parsed::Skip => {}
            Parsed::Reject(problem) => {
                t.stats.rejected += 1;
                t.note(line_no, "rejected", &problem, 0);
            }
        }
        if let Parser::Tsv(tsv) = p
            && let Some(path) = tsv.first_block_not_conn()
        {
            return Err(ReadError::NotConnLog {
                name: name.to_string(),
                path: crate::text::clip(&String::from_utf8_lossy(path), 40),
            });
        }
    }
    t.stats.bytes = lines.consumed;
    Ok(t.stats)
}

/// An error of the gzip layer that means "the stream is cut or damaged" rather than an I/O
/// failure of the file under it.
fn is_cut(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData
    )
}
