//! Reading report files: plain `.csv`, `.csv.gz`, `.zip` (each CSV inside) and `.eml` (each
//! zipped, gzipped or plain CSV attachment). Containers are recognised by their first bytes, so a
//! misnamed file still works. CSV is streamed record by record into a reused `ByteRecord`, so
//! memory stays constant whatever the file size (an `.eml` is read whole: it is a mail).
//!
//! This module knows nothing about the store: findings go to the sources' [`RowSink`], which
//! the pipeline backs with the store's writer (its apply path, `pipeline/apply.rs`).

use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Read, Seek};
use std::path::Path;

use super::normalize::{Normalizer, RowScratch};
use super::schema::Schema;
use crate::scope::ScopeMatcher;
use crate::sources::{RowError, RowSink};
use crate::store::StoreError;

/// Largest `.eml` read (mails are read whole).
pub const MAX_EML_BYTES: u64 = 256 << 20;

/// How row pointers (`Finding::raw`, error locations) are written.
#[derive(Debug, Clone)]
pub struct RawNaming {
    /// `path/to/file.csv` or `report 2024-01-04-scan_dns-org-asn.csv`.
    pub prefix: String,
    /// `:` gives `file.csv:12`; ` line ` gives `report x.csv line 12`.
    pub separator: &'static str,
}

impl RawNaming {
    /// `{prefix}{separator}{line}`.
    fn at(&self, line: u64) -> String {
        let mut s = String::new();
        self.write_at(line, &mut s);
        s
    }

    /// [`RawNaming::at`] written into a reused buffer (once per row).
    fn write_at(&self, line: u64, s: &mut String) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        let mut n = line;
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let digits = std::str::from_utf8(&digits[i..]).expect("ASCII digits");
        s.clear();
        s.push_str(&self.prefix);
        s.push_str(self.separator);
        s.push_str(digits);
    }
}

/// What reading one CSV report did.
#[derive(Debug, Clone, Default)]
pub struct CsvOutcome {
    /// Where it was (file, `zip!entry`, ...).
    pub location: String,
    pub report_type: String,
    /// Data rows read (header lines excluded).
    pub rows: usize,
    pub rejected: usize,
    /// Values kept in `extra` of accepted rows although malformed (one row may have several).
    pub warnings: usize,
    /// The reason the report could not be read to its end (rows read so far still count).
    pub error: Option<String>,
    /// Fields longer than [`MAX_FIELD`] bytes, cut to it (a warning, not a rejected row).
    pub cut_fields: usize,
}

/// Longest CSV field kept, in bytes: longer ones are cut as they stream past ([`FieldCap`]).
pub const MAX_FIELD: usize = 64 << 10;

/// Cuts every CSV field to at most `cap` bytes as the bytes stream past, so that a
/// pathological line (one field of 100 MB) costs no more memory than the cap. It follows the
/// CSV quoting the reader applies (a field is quoted when it starts with `"`; `""` inside is a
/// quote); structure (quotes, and commas and line ends outside quotes) always passes, other
/// bytes of a field past the cap are dropped, and each cut field counted.
pub struct FieldCap<R> {
    inner: R,
    cap: usize,
    state: Quoting,
    field: usize,
    cutting: bool,
    /// Fields cut so far.
    pub cut: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Quoting {
    /// At the start of a field.
    Start,
    Unquoted,
    Quoted,
    /// A `"` inside a quoted field: an escaped quote if another follows, else the end quote.
    QuotePending,
}

impl<R> FieldCap<R> {
    pub fn new(inner: R, cap: usize) -> Self {
        FieldCap {
            inner,
            cap,
            state: Quoting::Start,
            field: 0,
            cutting: false,
            cut: 0,
        }
    }

    /// Whether byte `b` goes on to the reader.
    fn keep(&mut self, b: u8) -> bool {
        use Quoting::*;
        let ends_field = matches!(b, b',' | b'\n');
        match (self.state, b) {
            (Start, b'"') => {
                self.state = Quoted;
                return true;
            }
            (Quoted, b'"') => {
                self.state = QuotePending;
                return true;
            }
            (QuotePending, b'"') => {
                self.state = Quoted;
                return true;
            }
            (Start | Unquoted | QuotePending, _) if ends_field => {
                self.state = Start;
                self.field = 0;
                self.cutting = false;
                return true;
            }
            (Start | QuotePending, _) => self.state = Unquoted,
            _ => {}
        }
        self.field += 1;
        if self.field <= self.cap {
            return true;
        }
        if !self.cutting {
            self.cutting = true;
            self.cut += 1;
        }
        false
    }
}

/// The bytes [`FieldCap`] follows: quotes, commas and line feeds (a `\r` is data to it; the
/// `\n` after it ends the field).
fn is_structure(b: u8) -> bool {
    matches!(b, b'"' | b',' | b'\n')
}

/// The index of the first structure byte (see [`is_structure`]) in `b` at or after `from`, or
/// `b.len()`. Eight bytes at a time: a field of a scan report is a dozen bytes, and a byte at a
/// time this scan was most of the cap's cost.
fn next_structure(b: &[u8], mut from: usize) -> usize {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGH: u64 = ONES << 7;
    // The high bit of every byte of `x` that is zero, and maybe of bytes after the first zero
    // byte (a borrow), never before it: the lowest set bit is exact.
    let zeros = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    while let Some(chunk) = b.get(from..from + 8) {
        let w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        let hit = zeros(w ^ (ONES * u64::from(b'"')))
            | zeros(w ^ (ONES * u64::from(b',')))
            | zeros(w ^ (ONES * u64::from(b'\n')));
        if hit != 0 {
            return from + (hit.trailing_zeros() / 8) as usize;
        }
        from += 8;
    }
    while from < b.len() && !is_structure(b[from]) {
        from += 1;
    }
    from
}

impl<R: Read> Read for FieldCap<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let n = self.inner.read(out)?;
            if n == 0 {
                return Ok(0);
            }
            let (mut w, mut r) = (0, 0);
            while r < n {
                if is_structure(out[r]) {
                    if self.keep(out[r]) {
                        out[w] = out[r];
                        w += 1;
                    }
                    r += 1;
                    continue;
                }
                // A run of data bytes: kept up to the cap, moved only once something was cut.
                let e = next_structure(&out[..n], r + 1);
                let len = e - r;
                if matches!(self.state, Quoting::Start | Quoting::QuotePending) {
                    self.state = Quoting::Unquoted;
                }
                let take = len.min(self.cap.saturating_sub(self.field));
                if take < len && !self.cutting {
                    self.cutting = true;
                    self.cut += 1;
                }
                self.field += len;
                if w != r {
                    out.copy_within(r..r + take, w);
                }
                w += take;
                r = e;
            }
            if w > 0 {
                return Ok(w);
            }
        }
    }
}

/// Reads one CSV report, row by row, into `sink`. Errors in rows are rejected rows; an error of
/// the stream (corrupt gzip, I/O) ends this report with `CsvOutcome::error` set. `Err` only when
/// the sink (the store) failed.
pub fn read_csv<R: Read>(
    reader: R,
    naming: &RawNaming,
    report_type: &str,
    schema: &Schema,
    scope: &ScopeMatcher,
    sink: &mut dyn RowSink,
) -> Result<CsvOutcome, StoreError> {
    let mut out = CsvOutcome {
        location: naming.prefix.clone(),
        report_type: schema.canonical(report_type).to_string(),
        ..Default::default()
    };
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(256 * 1024)
        .from_reader(FieldCap::new(reader, MAX_FIELD));
    let mut rec = csv::ByteRecord::new();
    let mut raw = String::new();
    let mut scratch = RowScratch::default();
    let norm = match read_header(&mut rdr, &mut rec).and_then(|header| {
        Normalizer::new(schema, report_type, &header, scope).map_err(ReportError::NotAReport)
    }) {
        Ok(n) => n,
        Err(e) => {
            out.error = Some(crate::text::chain(&e));
            return Ok(out);
        }
    };
    if let Some(message) = unknown_type_warning(schema, &out.report_type) {
        out.warnings += 1;
        sink.warning(RowError {
            location: naming.prefix.clone(),
            message,
        });
    }
    loop {
        match rdr.read_byte_record(&mut rec) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                out.error = Some(format!("reading stopped: {e}"));
                break;
            }
        }
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        if norm.is_header_repeat(&rec) {
            continue;
        }
        out.rows += 1;
        naming.write_at(line, &mut raw);
        match norm.row_view(&rec, &raw, &mut scratch, |f| sink.finding(f)) {
            Ok(stored) => {
                stored?;
                for message in scratch.warnings.drain(..) {
                    out.warnings += 1;
                    sink.warning(RowError {
                        location: naming.at(line),
                        message,
                    });
                }
            }
            Err(message) => {
                // Warnings of a rejected row are moot: the reason says what is wrong.
                scratch.warnings.clear();
                out.rejected += 1;
                sink.rejected(RowError {
                    location: naming.at(line),
                    message: message.to_string(),
                });
            }
        }
    }
    out.cut_fields = rdr.get_ref().cut;
    if out.cut_fields > 0 {
        tracing::warn!(
            report = %naming.prefix,
            fields = out.cut_fields,
            "fields longer than {} KiB were cut",
            MAX_FIELD >> 10
        );
    }
    Ok(out)
}

/// Why a report cannot be read at all (nothing of it is stored).
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("the report is empty (no header line)")]
    Empty,
    #[error("cannot read the report")]
    Unreadable(#[source] csv::Error),
    #[error("the report is an HTML page, not CSV")]
    Html,
    #[error(transparent)]
    NotAReport(#[from] super::normalize::NotAReport),
    #[error("cannot tell the report type from the name `{0}`: pass --type (e.g. --type scan_dns)")]
    UnknownType(String),
}

/// The header line of a report, or why the report has none.
fn read_header<R: Read>(
    rdr: &mut csv::Reader<R>,
    rec: &mut csv::ByteRecord,
) -> Result<Vec<String>, ReportError> {
    match rdr.read_byte_record(rec) {
        Ok(true) => {}
        Ok(false) => return Err(ReportError::Empty),
        Err(e) => return Err(ReportError::Unreadable(e)),
    }
    if crate::http::looks_like_html(rec.as_slice()) {
        return Err(ReportError::Html);
    }
    Ok(rec
        .iter()
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect())
}

/// The warning of a report whose type no table knows (it is read all the same: classified by
/// its name, every column kept); `None` for a known type.
pub fn unknown_type_warning(schema: &Schema, report_type: &str) -> Option<String> {
    if schema.knows(report_type) {
        return None;
    }
    let info = schema.info(report_type);
    let near = crate::config::closest(report_type, schema.all_names());
    let hint = match near.first() {
        Some(n) => format!("did you mean `{n}`? "),
        None => String::new(),
    };
    Some(format!(
        "`{}` is a report type outwatch does not know: read as {}/{} with every column kept \
         ({hint}`outwatch shadowserver update-schema` fetches the current list)",
        crate::text::clip(report_type, 80),
        info.taxonomy,
        info.kind
    ))
}

/// Options of a file import.
pub struct ImportOptions<'a> {
    pub schema: &'a Schema,
    pub scope: &'a ScopeMatcher,
    /// `--type`: the report type of every CSV (else taken from each file name).
    pub report_type: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Zip,
    Gzip,
    Plain,
}

fn sniff(start: &[u8]) -> Kind {
    if start.starts_with(b"PK\x03\x04") || start.starts_with(b"PK\x05\x06") {
        Kind::Zip
    } else if start.starts_with(&[0x1f, 0x8b]) {
        Kind::Gzip
    } else {
        Kind::Plain
    }
}

/// Imports one file of any supported kind. Problems with the file (unreadable, unknown type,
/// not a report) are returned as outcomes with `error` set; `Err` only when the sink failed.
pub fn import_file(
    path: &Path,
    opts: &ImportOptions<'_>,
    sink: &mut dyn RowSink,
) -> Result<Vec<CsvOutcome>, StoreError> {
    let shown = path.display().to_string();
    let fail = |msg: String| {
        Ok(vec![CsvOutcome {
            location: shown.clone(),
            error: Some(msg),
            ..Default::default()
        }])
    };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => return fail(format!("cannot open: {e}")),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let is_eml = name.to_ascii_lowercase().ends_with(".eml");
    if is_eml {
        let mut bytes = Vec::new();
        if let Err(e) = file.take(MAX_EML_BYTES + 1).read_to_end(&mut bytes) {
            return fail(format!("cannot read: {e}"));
        }
        if bytes.len() as u64 > MAX_EML_BYTES {
            return fail(format!(
                "the mail is larger than {} MiB",
                MAX_EML_BYTES >> 20
            ));
        }
        return import_eml(&bytes, &shown, &name, opts, sink);
    }
    let mut buf = BufReader::with_capacity(256 * 1024, file);
    let kind = match buf.fill_buf() {
        Ok(b) => sniff(b),
        Err(e) => return fail(format!("cannot read: {e}")),
    };
    import_stream(buf, kind, &shown, &name, None, opts, sink)
}

/// The report type of a CSV: `--type`, else the first of `names` (the CSV's own, its
/// container's, the mail's) that names a known type, else a dated report name of a type no
/// table knows (read with a warning).
fn report_type_for(
    opts: &ImportOptions<'_>,
    names: [Option<&str>; 3],
) -> Result<String, ReportError> {
    if let Some(t) = opts.report_type {
        return Ok(t.to_string());
    }
    let names = names.iter().flatten();
    names
        .clone()
        .find_map(|n| opts.schema.type_from_file_name(n))
        .or_else(|| {
            names
                .clone()
                .find_map(|n| super::schema::unknown_type_from_file_name(n))
        })
        .ok_or_else(|| {
            ReportError::UnknownType(crate::text::clip(
                names.clone().next().copied().unwrap_or(""),
                120,
            ))
        })
}

/// Imports a container (zip, gzip or plain CSV) given as a reader.
fn import_stream<R: Read + Seek>(
    reader: R,
    kind: Kind,
    shown: &str,
    name: &str,
    outer_name: Option<&str>,
    opts: &ImportOptions<'_>,
    sink: &mut dyn RowSink,
) -> Result<Vec<CsvOutcome>, StoreError> {
    let type_for = |inner: &str| report_type_for(opts, [Some(inner), Some(name), outer_name]);
    match kind {
        Kind::Plain | Kind::Gzip => {
            let t = match type_for(name) {
                Ok(t) => t,
                Err(e) => return Ok(vec![failed(shown.to_string(), e.to_string())]),
            };
            let n = naming(shown.to_string());
            let o = if kind == Kind::Gzip {
                let gz = flate2::read::MultiGzDecoder::new(reader);
                read_csv(gz, &n, &t, opts.schema, opts.scope, sink)?
            } else {
                read_csv(reader, &n, &t, opts.schema, opts.scope, sink)?
            };
            Ok(vec![o])
        }
        Kind::Zip => import_zip(reader, shown, [Some(name), outer_name], opts, sink),
    }
}

/// The outcome of a report that could not be read at all.
fn failed(location: String, msg: String) -> CsvOutcome {
    CsvOutcome {
        location,
        error: Some(msg),
        ..Default::default()
    }
}

/// Row pointers of a file import: `file.csv:12`.
fn naming(prefix: String) -> RawNaming {
    RawNaming {
        prefix,
        separator: ":",
    }
}

/// Imports every CSV of a zip file (every file when it names none `.csv`); `outer` are the
/// zip's own name and its mail's, which may name the report type.
fn import_zip<R: Read + Seek>(
    reader: R,
    shown: &str,
    outer: [Option<&str>; 2],
    opts: &ImportOptions<'_>,
    sink: &mut dyn RowSink,
) -> Result<Vec<CsvOutcome>, StoreError> {
    let mut zip = match zip::ZipArchive::new(reader) {
        Ok(z) => z,
        Err(e) => {
            return Ok(vec![failed(
                shown.to_string(),
                format!("not a readable zip file: {e}"),
            )]);
        }
    };
    let names: Vec<(usize, String)> = (0..zip.len())
        .filter_map(|i| {
            let f = zip.by_index(i).ok()?;
            (!f.is_dir()).then(|| (i, f.name().to_string()))
        })
        .collect();
    let csvs: Vec<&(usize, String)> = names
        .iter()
        .filter(|(_, n)| {
            let l = n.to_ascii_lowercase();
            l.ends_with(".csv") || l.ends_with(".csv.gz")
        })
        .collect();
    let chosen: Vec<&(usize, String)> = if csvs.is_empty() {
        names.iter().collect()
    } else {
        csvs
    };
    if chosen.is_empty() {
        return Ok(vec![failed(
            shown.to_string(),
            "the zip file holds no file".into(),
        )]);
    }
    let mut outs = Vec::new();
    for (i, entry_name) in chosen {
        let loc = format!("{shown}!{entry_name}");
        let t = match report_type_for(opts, [Some(entry_name), outer[0], outer[1]]) {
            Ok(t) => t,
            Err(e) => {
                outs.push(failed(loc, e.to_string()));
                continue;
            }
        };
        let entry = match zip.by_index(*i) {
            Ok(e) => e,
            Err(e) => {
                outs.push(failed(loc, format!("cannot read the zip entry: {e}")));
                continue;
            }
        };
        let n = naming(loc);
        let o = if entry_name.to_ascii_lowercase().ends_with(".gz") {
            read_csv(
                flate2::read::MultiGzDecoder::new(entry),
                &n,
                &t,
                opts.schema,
                opts.scope,
                sink,
            )?
        } else {
            read_csv(entry, &n, &t, opts.schema, opts.scope, sink)?
        };
        outs.push(o);
    }
    Ok(outs)
}

/// A report a Shadowserver mail links to instead of attaching it:
/// `https://dl.shadowserver.org/<id>?<file name>.csv`. The id works like a password.
#[derive(Clone, PartialEq, Eq)]
pub struct ReportLink {
    pub id: String,
    /// The report's file name (it names the report type).
    pub file: String,
}

impl std::fmt::Debug for ReportLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReportLink(***, {})", self.file)
    }
}

/// Whether a mail part is a report (a CSV, zip or gzip attachment).
fn is_report_attachment(name: &str, content: &[u8]) -> bool {
    let lower = name.to_ascii_lowercase();
    sniff(content) != Kind::Plain || lower.ends_with(".csv") || lower.ends_with(".txt")
}

/// The `dl.shadowserver.org` report links of a mail that carries no report attachment (a mail
/// with attachments is imported from them, and gives none). Each link once, in mail order.
pub fn mail_links(bytes: &[u8]) -> Vec<ReportLink> {
    use mail_parser::{MessageParser, MimeHeaders};
    let Some(msg) = MessageParser::default().parse(bytes) else {
        return Vec::new();
    };
    let attached = msg.attachments().enumerate().any(|(n, part)| {
        let name = part
            .attachment_name()
            .map(str::to_string)
            .unwrap_or_else(|| format!("attachment-{}", n + 1));
        is_report_attachment(&name, part.contents())
    });
    if attached {
        return Vec::new();
    }
    let Some(mail) = crate::mail::parse(bytes) else {
        return Vec::new();
    };
    let mut out: Vec<ReportLink> = Vec::new();
    for body in mail.bodies() {
        for link in links_in(body) {
            if !out.iter().any(|l| l.id == link.id) {
                out.push(link);
            }
        }
    }
    out
}

/// Finds `https://dl.shadowserver.org/<id>?<file name>` in a text (or HTML) body.
fn links_in(body: &str) -> Vec<ReportLink> {
    const HOST: &str = "dl.shadowserver.org/";
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(i) = rest.find(HOST) {
        rest = &rest[i + HOST.len()..];
        let end = rest
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | ')' | ']'))
            .unwrap_or(rest.len());
        let link = &rest[..end];
        let Some((id, file)) = link.split_once('?') else {
            continue;
        };
        let id_ok = !id.is_empty()
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        // `&amp;`-free file names only: a path separator or a query in the name is refused.
        let file = file.split('&').next().unwrap_or(file);
        let file_ok = !file.is_empty()
            && file
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && !file.starts_with('.');
        if id_ok && file_ok {
            out.push(ReportLink {
                id: id.to_string(),
                file: file.to_string(),
            });
        }
    }
    out
}

/// Imports one report held in memory (a downloaded mail link): zip, gzip or plain CSV. `shown`
/// names it in messages, `name` is its file name (which names the report type).
pub fn import_bytes(
    bytes: &[u8],
    shown: &str,
    name: &str,
    opts: &ImportOptions<'_>,
    sink: &mut dyn RowSink,
) -> Result<Vec<CsvOutcome>, StoreError> {
    import_stream(
        Cursor::new(bytes),
        sniff(bytes),
        shown,
        name,
        None,
        opts,
        sink,
    )
}

/// Imports every CSV, zip or gzip attachment of a mail.
fn import_eml(
    bytes: &[u8],
    shown: &str,
    name: &str,
    opts: &ImportOptions<'_>,
    sink: &mut dyn RowSink,
) -> Result<Vec<CsvOutcome>, StoreError> {
    use mail_parser::{MessageParser, MimeHeaders};
    let failed = |msg: String| CsvOutcome {
        location: shown.to_string(),
        error: Some(msg),
        ..Default::default()
    };
    let Some(msg) = MessageParser::default().parse(bytes) else {
        return Ok(vec![failed("not a readable e-mail message".into())]);
    };
    let mut outs = Vec::new();
    for (n, part) in msg.attachments().enumerate() {
        let att_name = part
            .attachment_name()
            .map(str::to_string)
            .unwrap_or_else(|| format!("attachment-{}", n + 1));
        let content = part.contents();
        let kind = sniff(content);
        if !is_report_attachment(&att_name, content) {
            continue;
        }
        let loc = format!("{shown}!{att_name}");
        outs.extend(import_stream(
            Cursor::new(content),
            kind,
            &loc,
            &att_name,
            Some(name),
            opts,
            sink,
        )?);
    }
    if outs.is_empty() {
        outs.push(failed(
            "the mail has no CSV, zip or gzip attachment and no dl.shadowserver.org report link"
                .into(),
        ));
    }
    Ok(outs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::FindingView;
    use crate::scope::{AsnPrefixes, ScopeSnapshot};
    use crate::store::sled_store::Encoded;

    /// Encodes each row twice: its view as it is, and an owned finding made from it.
    struct TwoPaths {
        views: Encoded,
        owned: Encoded,
    }

    impl RowSink for TwoPaths {
        fn finding(&mut self, f: &FindingView<'_>) -> Result<(), StoreError> {
            self.views.view(f)?;
            self.owned.finding(&f.to_finding())
        }
        fn rejected(&mut self, _e: RowError) {}
    }

    /// A field of a megabyte (quoted, with commas, line ends and escaped quotes in it) is cut to
    /// the cap; the rows around it and its other fields are intact, and the cut is counted.
    #[test]
    fn long_fields_are_cut_as_they_stream() {
        let big: String = "ab,c\n\"\"d".repeat(200_000);
        let csv = format!(
            "h1,h2,h3\n1,\"{big}\",x\n2,{},y\n3,\"q\"\"q\",z\n",
            "u".repeat(100_000)
        );
        let mut r = FieldCap::new(Cursor::new(csv.into_bytes()), 1000);
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(&mut r);
        let rows: Vec<csv::StringRecord> = rdr.records().map(|r| r.unwrap()).collect();
        assert_eq!(rows.len(), 3);
        assert_eq!((&rows[0][0], &rows[0][2]), ("1", "x"));
        assert!(rows[0][1].starts_with("ab,c\n\"d"), "{}", &rows[0][1][..20]);
        // The cap counts data bytes; escaped quotes are structure and pass.
        assert!(rows[0][1].len() < 1000 + 200_000 + 10);
        assert_eq!(rows[1][1].len(), 1000);
        assert_eq!((&rows[1][0], &rows[1][2]), ("2", "y"));
        assert_eq!(&rows[2][1], "q\"q");
        drop(rdr);
        assert_eq!(r.cut, 2);
    }

    /// The word-at-a-time scan finds the structure byte a byte-at-a-time scan finds, wherever
    /// it lies in a word (every offset, every byte value around it).
    #[test]
    fn next_structure_finds_the_first_structure_byte() {
        let naive = |b: &[u8], mut i: usize| {
            while i < b.len() && !is_structure(b[i]) {
                i += 1;
            }
            i
        };
        let mut x: u32 = 0x1234_5678;
        for len in 0..40 {
            for _ in 0..200 {
                let b: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        // Mostly data, bytes next to the structure values, some structure.
                        [
                            b'a', b'"', b',', b'\n', b'+', b'-', b'!', b'#', 0x80, 0xff, 0, 0x0b,
                        ][(x % 12) as usize]
                            .wrapping_add(u8::from(x.is_multiple_of(7)))
                    })
                    .collect();
                for from in 0..=len {
                    assert_eq!(next_structure(&b, from), naive(&b, from), "{b:?} {from}");
                }
            }
        }
    }

    /// The import stores rows from their views; the bytes must be those an owned finding gives
    /// (views come sealed, pairs encode as the JSON `extra` does, same fingerprint and home).
    #[test]
    fn views_encode_as_owned_findings_do() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        for dir in [
            "tests/fixtures/shadowserver",
            "../shared/samples/shadowserver",
        ] {
            // The shared samples may be absent (a bare checkout): then only our fixtures. CI
            // has them, so there an absent folder fails.
            let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "{dir} is absent under CI=true"
                );
                continue;
            };
            files.extend(entries.map(|e| e.unwrap().path()));
        }
        files.sort();
        assert!(files.len() >= 5, "{files:?}");
        let schema = Schema::bundled();
        let ours = ScopeMatcher::new(&ScopeSnapshot {
            asns: vec![AsnPrefixes {
                asn: 64496,
                prefixes: ["0.0.0.0/1", "192.0.2.0/24", "2001:db8::/32"]
                    .map(|p| p.parse().unwrap())
                    .to_vec(),
                refreshed_at: None,
                attempted_at: None,
                last_error: None,
            }],
            prefixes: vec!["198.51.100.0/24".parse().unwrap()],
            domains: vec!["example.org".into(), "com".into()],
            emails: vec![],
        });
        let now = chrono::DateTime::from_timestamp(1_790_000_000, 5_000).unwrap();
        let mut rows = 0;
        for scope in [&ours, &ScopeMatcher::default()] {
            let opts = ImportOptions {
                schema: &schema,
                scope,
                report_type: None,
            };
            for file in &files {
                let mut sink = TwoPaths {
                    views: Encoded::new(now),
                    owned: Encoded::new(now),
                };
                import_file(file, &opts, &mut sink).unwrap();
                rows += sink.views.len();
                assert_eq!(sink.views.len(), sink.owned.len(), "{}", file.display());
                assert!(sink.views == sink.owned, "{}", file.display());
            }
        }
        // Our fixtures alone give 9 good rows per scope.
        assert!(rows >= 18, "{rows}");
    }

    #[test]
    fn raw_pointers() {
        let n = RawNaming {
            prefix: "dir/a.csv".into(),
            separator: ":",
        };
        for line in [0, 1, 9, 10, 12345, u64::MAX] {
            assert_eq!(n.at(line), format!("dir/a.csv:{line}"));
        }
        let n = RawNaming {
            prefix: "report x.csv".into(),
            separator: " line ",
        };
        assert_eq!(n.at(12), "report x.csv line 12");
    }
}
