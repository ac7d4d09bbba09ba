//! Reads a list body into records, whatever its layout: CSV with named or numbered columns
//! (ThreatFox's `", "` dialect included), one-entry-per-line text, JSON documents and JSON lines.
//!
//! Invariant: a malformed entry never fails the body. The callback's `Err` becomes a rejected
//! row with its line; only a body that cannot be read as a whole (not JSON at all, a column the
//! header lacks, a trailer that disagrees with the rows read) is an error.

use std::borrow::Cow;

use csv::ByteRecord;
use serde_json::{Map, Value};

use super::definition::{ColumnRef, CsvDef, FeedDef, FormatDef, HeaderMode, JsonDef, JsonlDef};

/// A column resolved for one body: a position, or a JSON key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Col {
    Idx(usize),
    Key(String),
}

/// The feed file's columns, resolved against one body's header.
#[derive(Debug, Clone, Default)]
pub struct Cols {
    pub ip: Option<Col>,
    pub network: Option<Col>,
    pub url: Option<Col>,
    pub domain: Option<Col>,
    pub asn: Option<Col>,
    pub indicator: Option<Col>,
    pub indicator_type: Option<Col>,
    pub port: Option<Col>,
    pub time: Option<Col>,
    pub malware: Option<Col>,
    pub kind: Option<Col>,
    pub extra: Vec<(String, Col)>,
    /// The highest column position a row should have (CSV / lines). A shorter row reads the
    /// missing fields as empty; `matching::entry` names the count when that costs the entry
    /// its indicator, and warns when it does not.
    pub min_fields: usize,
}

/// One entry of a list.
pub trait Record {
    /// A field's text (`None` when the row is too short or the key is absent / JSON null).
    fn get(&self, c: &Col) -> Option<Cow<'_, str>>;
    /// Number of fields (CSV / lines); JSON records say `usize::MAX`.
    fn width(&self) -> usize;
}

/// What a reader calls for each entry; `Err` rejects the entry with that reason.
pub type OnRow<'a> = dyn FnMut(&Cols, &dyn Record, Pos) -> Result<(), Rejection> + 'a;

/// Where an entry is: `line 12` or `record 3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pos {
    Line(u64),
    Record(u64),
}

impl std::fmt::Display for Pos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pos::Line(n) => write!(f, "line {n}"),
            Pos::Record(n) => write!(f, "record {n}"),
        }
    }
}

/// Why a list body as a whole is unusable (cut off, unreadable, a changed layout). The
/// entries read before it are not kept: a unit is all or nothing.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("no header line to find column `{0}` in")]
    NoHeaderFor(String),
    #[error(
        "the header has no column `{column}` (columns: {columns}); did the list change its layout?"
    )]
    MissingColumn { column: String, columns: String },
    #[error("cannot read the header row")]
    Header(#[source] csv::Error),
    #[error("the list has data but no header line naming its columns")]
    NoHeader,
    #[error(
        "the list is cut off or altered: its {by} announces {announced} entries but {read} were read"
    )]
    CountMismatch {
        by: &'static str,
        announced: usize,
        read: usize,
    },
    #[error("the list is cut off: {missing} is missing ({read} entries read)")]
    EndMissing { missing: String, read: usize },
    #[error("not a complete JSON document (cut off?)")]
    Json(#[source] serde_json::Error),
    #[error("the provider answered with an error: {0}")]
    Refused(String),
    #[error("the document has no `{0}` member")]
    NoMember(String),
    #[error("expected a JSON array or object of records")]
    NotRecords,
}

/// Why one entry was rejected: the identity of its finding is missing or malformed (see
/// `matching::entry`). The text is for people; the value is already clipped for them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("`{value}` is not {what}")]
    Malformed { value: String, what: &'static str },
    #[error("cannot tell what `{0}` is")]
    Unrecognised(String),
    #[error("has {width} fields, expected at least {min} (cut off?)")]
    Short { width: usize, min: usize },
    #[error("no indicator: the IP / URL / domain / network / ASN field is empty")]
    NoIndicator,
}

impl Rejection {
    /// `value` is not `what` (`an IP address`); the value is clipped for display.
    pub fn malformed(value: &str, what: &'static str) -> Self {
        Rejection::Malformed {
            value: crate::text::clip(value, 120),
            what,
        }
    }
}

/// What reading a body found besides its entries.
#[derive(Debug, Default)]
pub struct BodyInfo {
    /// Entries read (every data row, good or bad).
    pub entries: usize,
    /// Rows the callback rejected, with position and reason.
    pub rejected: Vec<(Pos, String)>,
    /// Deprecation notices seen in comments.
    pub notices: Vec<String>,
    /// The list's own time (Spamhaus' metadata `timestamp`), when the feed file names it.
    pub time: Option<chrono::DateTime<chrono::Utc>>,
    /// The body said where it ends and that end was found: a trailer or metadata record whose
    /// count matched the entries read, or a whole JSON document. A body without it ends whole
    /// at any line end (see `sources::judge_size`).
    pub counted: bool,
}

/// Reads `body` as `def` describes and calls `on_row` for each entry.
pub fn read_body(
    def: &FeedDef,
    body: &[u8],
    on_row: &mut OnRow<'_>,
) -> Result<BodyInfo, BodyError> {
    // A UTF-8 byte-order mark would glue itself to the first line (a banner comment read as
    // data, a header or first record misread).
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    match &def.format {
        FormatDef::Csv(c) => read_csv(def, c, body, on_row),
        FormatDef::Lines(_) => read_lines(def, body, on_row),
        FormatDef::Json(j) => read_json(def, j, body, on_row).map(|mut info| {
            info.counted = true;
            info
        }),
        FormatDef::Jsonl(j) => read_jsonl(def, j, body, on_row),
    }
}

// ---------------------------------------------------------------------------------------------
// Column resolution

/// Resolves the feed's columns against a header (`None`: numbered columns only / JSON keys).
pub fn resolve_cols(
    def: &FeedDef,
    header: Option<&[String]>,
    json: bool,
) -> Result<Cols, BodyError> {
    let mut max = 0usize;
    let mut one = |c: &Option<ColumnRef>, required: bool| -> Result<Option<Col>, BodyError> {
        let Some(c) = c else { return Ok(None) };
        let r = resolve_one(c, header, json, required)?;
        if let Some(Col::Idx(i)) = &r {
            max = max.max(i + 1);
        }
        Ok(r)
    };
    let f = &def.fields;
    let mut cols = Cols {
        ip: one(&f.ip, true)?,
        network: one(&f.network, true)?,
        url: one(&f.url, true)?,
        domain: one(&f.domain, true)?,
        asn: one(&f.asn, true)?,
        indicator: one(&f.indicator, true)?,
        indicator_type: one(&f.indicator_type, true)?,
        port: one(&f.port, false)?,
        time: one(&f.time, false)?,
        malware: one(&f.malware, false)?,
        kind: one(&f.kind, false)?,
        extra: Vec::new(),
        min_fields: 0,
    };
    for (name, c) in &def.extra {
        if let Some(col) = one(&Some(c.clone()), false)? {
            cols.extra.push((name.clone(), col));
        }
    }
    cols.min_fields = max;
    Ok(cols)
}

fn resolve_one(
    c: &ColumnRef,
    header: Option<&[String]>,
    json: bool,
    required: bool,
) -> Result<Option<Col>, BodyError> {
    match c {
        ColumnRef::Number(n) => Ok(Some(Col::Idx(n - 1))),
        ColumnRef::Name(n) if json => Ok(Some(Col::Key(n.clone()))),
        ColumnRef::Name(n) => {
            let Some(h) = header else {
                return Err(BodyError::NoHeaderFor(n.clone()));
            };
            match h
                .iter()
                .position(|x| x.trim().eq_ignore_ascii_case(n.trim()))
            {
                Some(i) => Ok(Some(Col::Idx(i))),
                None if required => Err(BodyError::MissingColumn {
                    column: n.clone(),
                    columns: h.join(", "),
                }),
                None => {
                    tracing::debug!(column = %n, "optional column absent from this list");
                    Ok(None)
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// CSV

struct CsvRec<'a>(&'a ByteRecord);

impl Record for CsvRec<'_> {
    #[inline]
    fn get(&self, c: &Col) -> Option<Cow<'_, str>> {
        match c {
            Col::Idx(i) => self.0.get(*i).map(String::from_utf8_lossy),
            Col::Key(_) => None,
        }
    }
    fn width(&self) -> usize {
        self.0.len()
    }
}

/// Rewrites ThreatFox's `"a", "b"` separators to plain `"a","b"` so a standard CSV reader
/// keeps quoted commas inside fields.
pub fn normalise_quote_comma_space(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        if body[i] == b'"' && body.get(i + 1) == Some(&b',') && body.get(i + 2) == Some(&b' ') {
            out.extend_from_slice(b"\",");
            i += 3;
            while body.get(i) == Some(&b' ') {
                i += 1;
            }
        } else {
            out.push(body[i]);
            i += 1;
        }
    }
    out
}

/// Lines of a body without their line ending, numbered from 1.
fn lines(body: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    body.split(|b| *b == b'\n').enumerate().map(|(i, l)| {
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        (i as u64 + 1, l)
    })
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    b.trim_ascii()
}

fn read_csv(
    def: &FeedDef,
    c: &CsvDef,
    body: &[u8],
    on_row: &mut OnRow<'_>,
) -> Result<BodyInfo, BodyError> {
    let normalised;
    let (body, sep) = if c.separator == ", " {
        normalised = normalise_quote_comma_space(body);
        (normalised.as_slice(), b',')
    } else {
        (body, c.separator.as_bytes()[0])
    };
    let comment = c.comment.as_bytes()[0];
    let mut info = BodyInfo::default();
    // The leading comment block: deprecation notices, and the header in `comment` mode.
    let mut last_comment: Option<&[u8]> = None;
    let mut has_data = false;
    for (_, l) in lines(body) {
        let t = trim_ascii(l);
        if t.is_empty() {
            continue;
        }
        if t[0] == comment {
            note_deprecation(def, t, &mut info);
            // A bare `#` separator line is never the header.
            if !trim_ascii(&t[1..]).is_empty() {
                last_comment = Some(t);
            }
            continue;
        }
        has_data = true;
        break;
    }
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(sep)
        .comment(Some(comment))
        .from_reader(body);
    let mut rec = ByteRecord::new();
    let header: Option<Vec<String>> = match c.header {
        HeaderMode::None => None,
        HeaderMode::Comment => match last_comment {
            Some(h) if has_data => {
                let text = trim_ascii(&h[1..]);
                let mut hr = csv::ReaderBuilder::new()
                    .has_headers(false)
                    .delimiter(sep)
                    .from_reader(text);
                let mut r = ByteRecord::new();
                match hr.read_byte_record(&mut r) {
                    Ok(true) => Some(
                        r.iter()
                            .map(|f| String::from_utf8_lossy(f).trim().to_string())
                            .collect(),
                    ),
                    _ => None,
                }
            }
            _ => None,
        },
        HeaderMode::Row => {
            if has_data {
                match rdr.read_byte_record(&mut rec) {
                    Ok(true) => Some(
                        rec.iter()
                            .map(|f| String::from_utf8_lossy(f).trim().to_string())
                            .collect(),
                    ),
                    Ok(false) => None,
                    Err(e) => return Err(BodyError::Header(e)),
                }
            } else {
                None
            }
        }
    };
    if !has_data {
        info.counted = check_trailer(body, c.trailer.as_deref(), c.trailer_required, 0)?;
        return Ok(info);
    }
    if c.header != HeaderMode::None && header.is_none() {
        return Err(BodyError::NoHeader);
    }
    let cols = resolve_cols(def, header.as_deref(), false)?;
    loop {
        match rdr.read_byte_record(&mut rec) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                // The csv reader reports I/O and UTF-8 problems only; count and go on.
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                info.entries += 1;
                info.rejected.push((Pos::Line(line), e.to_string()));
                continue;
            }
        }
        // A record's own position is where the reader started looking for it, i.e. before any
        // comment lines it skipped; the line is where the record ends.
        let end = rdr.position();
        let line = if end.byte() > 0 && body.get(end.byte() as usize - 1) == Some(&b'\n') {
            end.line().saturating_sub(1)
        } else {
            end.line()
        };
        if rec.len() == 1 && rec.get(0).is_some_and(|f| f.trim_ascii().is_empty()) {
            continue;
        }
        info.entries += 1;
        // A row with fewer fields than the columns named reads the missing ones as empty: it is
        // rejected only when its indicator is among them (see `matching::entry`).
        let r = CsvRec(&rec);
        if let Err(m) = on_row(&cols, &r, Pos::Line(line)) {
            info.rejected.push((Pos::Line(line), m.to_string()));
        }
    }
    info.counted = check_trailer(body, c.trailer.as_deref(), c.trailer_required, info.entries)?;
    Ok(info)
}

fn note_deprecation(def: &FeedDef, comment_line: &[u8], info: &mut BodyInfo) {
    if let Some(n) = &def.deprecation_notice {
        let t = String::from_utf8_lossy(comment_line);
        if t.contains(n.as_str()) {
            info.notices.push(
                t.trim_start_matches(|c: char| c == '#' || c == ';' || c.is_whitespace())
                    .to_string(),
            );
        }
    }
}

/// Compares an entry-count trailer (`# END {n} entries`) with the entries read. A trailer that
/// disagrees, or a required one that is missing, means the body was cut off or altered: an
/// error, so the store keeps the last good state and nothing resolves by mistake. Returns
/// whether the trailer was there (and agreed).
pub fn check_trailer(
    body: &[u8],
    pattern: Option<&str>,
    required: bool,
    entries: usize,
) -> Result<bool, BodyError> {
    let Some(pattern) = pattern else {
        return Ok(false);
    };
    let (pre, post) = pattern.split_once("{n}").unwrap_or((pattern, ""));
    // The trailer is the last non-empty line.
    let last = body
        .rsplit(|b| *b == b'\n')
        .map(trim_ascii)
        .find(|l| !l.is_empty());
    let found = last.and_then(|l| {
        let l = std::str::from_utf8(l).ok()?;
        let mid = l.strip_prefix(pre)?.strip_suffix(post)?;
        // The older Feodo trailer wrote the count in parentheses: `# END (28) entries`.
        mid.trim()
            .trim_start_matches('(')
            .trim_end_matches(')')
            .trim()
            .parse::<usize>()
            .ok()
    });
    match found {
        Some(n) if n == entries => Ok(true),
        Some(n) => Err(BodyError::CountMismatch {
            by: "trailer",
            announced: n,
            read: entries,
        }),
        None if required => Err(BodyError::EndMissing {
            missing: format!("the closing `{pattern}` line"),
            read: entries,
        }),
        None => Ok(false),
    }
}

// ---------------------------------------------------------------------------------------------
// One entry per line

struct LineRec<'a>(&'a [&'a str]);

impl Record for LineRec<'_> {
    fn get(&self, c: &Col) -> Option<Cow<'_, str>> {
        match c {
            Col::Idx(i) => self.0.get(*i).map(|s| Cow::Borrowed(*s)),
            Col::Key(_) => None,
        }
    }
    fn width(&self) -> usize {
        self.0.len()
    }
}

fn read_lines(def: &FeedDef, body: &[u8], on_row: &mut OnRow<'_>) -> Result<BodyInfo, BodyError> {
    let FormatDef::Lines(l) = &def.format else {
        unreachable!("read_lines is called for line feeds")
    };
    let cols = resolve_cols(def, None, false)?;
    let mut info = BodyInfo::default();
    let mut fields: Vec<&str> = Vec::with_capacity(4);
    for (n, raw) in lines(body) {
        let t = trim_ascii(raw);
        if t.is_empty() {
            continue;
        }
        if t.starts_with(l.comment.as_bytes()) {
            note_deprecation(def, t, &mut info);
            continue;
        }
        info.entries += 1;
        let Ok(text) = std::str::from_utf8(t) else {
            info.rejected
                .push((Pos::Line(n), "not valid UTF-8 text".to_string()));
            continue;
        };
        fields.clear();
        match &l.separator {
            Some(s) => fields.extend(text.split(s.as_str()).map(str::trim)),
            None => fields.extend(text.split_whitespace()),
        }
        if let Err(m) = on_row(&cols, &LineRec(&fields), Pos::Line(n)) {
            info.rejected.push((Pos::Line(n), m.to_string()));
        }
    }
    info.counted = check_trailer(body, l.trailer.as_deref(), l.trailer_required, info.entries)?;
    Ok(info)
}

// ---------------------------------------------------------------------------------------------
// JSON

struct JsonRec<'a> {
    obj: &'a Map<String, Value>,
    /// The id an object-of-arrays document files this record under (`_key`).
    key: Option<&'a str>,
}

fn value_text(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(Cow::Borrowed(s.as_str())),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        Value::Array(a) => Some(Cow::Owned(
            a.iter()
                .filter_map(value_text)
                .collect::<Vec<_>>()
                .join(","),
        )),
        Value::Object(_) => Some(Cow::Owned(v.to_string())),
    }
}

impl Record for JsonRec<'_> {
    fn get(&self, c: &Col) -> Option<Cow<'_, str>> {
        match c {
            Col::Key(k) if k == "_key" => self.key.map(Cow::Borrowed),
            Col::Key(k) => self.obj.get(k).and_then(value_text),
            Col::Idx(_) => None,
        }
    }
    fn width(&self) -> usize {
        usize::MAX
    }
}

/// An `{"error": ...}` or `{"query_status": "<not ok>"}` object is the provider refusing.
pub fn json_error(v: &Value) -> Option<String> {
    let o = v.as_object()?;
    if let Some(e) = o.get("error") {
        return Some(value_text(e).map(|c| c.into_owned()).unwrap_or_default());
    }
    match o.get("query_status").and_then(Value::as_str) {
        Some("ok") | None => None,
        Some(s) => {
            let msg = o.get("msg").or_else(|| o.get("data"));
            Some(match msg.and_then(Value::as_str) {
                Some(m) => format!("{s}: {m}"),
                None => s.to_string(),
            })
        }
    }
}

fn read_json(
    def: &FeedDef,
    j: &JsonDef,
    body: &[u8],
    on_row: &mut OnRow<'_>,
) -> Result<BodyInfo, BodyError> {
    let doc: Value = serde_json::from_slice(body).map_err(BodyError::Json)?;
    if let Some(e) = json_error(&doc) {
        return Err(BodyError::Refused(e));
    }
    let cols = resolve_cols(def, None, true)?;
    let top = match &j.records {
        Some(k) => doc.get(k).ok_or_else(|| BodyError::NoMember(k.clone()))?,
        None => &doc,
    };
    let mut info = BodyInfo::default();
    let mut n = 0u64;
    let mut one = |obj: &Value, key: Option<&str>, info: &mut BodyInfo| {
        n += 1;
        info.entries += 1;
        match obj.as_object() {
            Some(o) => {
                if let Err(m) = on_row(&cols, &JsonRec { obj: o, key }, Pos::Record(n)) {
                    info.rejected.push((Pos::Record(n), m.to_string()));
                }
            }
            None => info
                .rejected
                .push((Pos::Record(n), "not a JSON object".to_string())),
        }
    };
    match top {
        Value::Array(a) => {
            for v in a {
                one(v, None, &mut info);
            }
        }
        Value::Object(m) => {
            // URLhaus / ThreatFox dumps: {"<id>": [ {...} ], ...}
            for (k, v) in m {
                match v {
                    Value::Array(a) => {
                        for x in a {
                            one(x, Some(k), &mut info);
                        }
                    }
                    other => one(other, Some(k), &mut info),
                }
            }
        }
        _ => return Err(BodyError::NotRecords),
    }
    Ok(info)
}

fn read_jsonl(
    def: &FeedDef,
    j: &JsonlDef,
    body: &[u8],
    on_row: &mut OnRow<'_>,
) -> Result<BodyInfo, BodyError> {
    let cols = resolve_cols(def, None, true)?;
    let mut info = BodyInfo::default();
    let mut declared: Option<Option<usize>> = None;
    for (n, raw) in lines(body) {
        let t = trim_ascii(raw);
        if t.is_empty() {
            continue;
        }
        let v: Value = match serde_json::from_slice(t) {
            Ok(v) => v,
            Err(e) => {
                info.entries += 1;
                info.rejected
                    .push((Pos::Line(n), format!("not a JSON object: {e}")));
                continue;
            }
        };
        if n == 1
            && let Some(e) = json_error(&v)
        {
            return Err(BodyError::Refused(e));
        }
        if let Some(m) = &j.metadata
            && v.get(&m.field).and_then(Value::as_str) == Some(m.value.as_str())
        {
            let count = m
                .count
                .as_ref()
                .and_then(|c| v.get(c))
                .and_then(Value::as_u64)
                .map(|c| c as usize);
            declared = Some(count);
            if let Some(tf) = &m.time {
                info.time = v.get(tf).and_then(|t| match t {
                    Value::Number(n) => n
                        .as_i64()
                        .and_then(|s| chrono::DateTime::from_timestamp(s, 0)),
                    Value::String(s) => super::time::parse_time(s),
                    _ => None,
                });
            }
            continue;
        }
        info.entries += 1;
        match v.as_object() {
            Some(o) => {
                if let Err(m) = on_row(&cols, &JsonRec { obj: o, key: None }, Pos::Line(n)) {
                    info.rejected.push((Pos::Line(n), m.to_string()));
                }
            }
            None => info
                .rejected
                .push((Pos::Line(n), "not a JSON object".to_string())),
        }
    }
    info.counted = matches!(declared, Some(Some(c)) if c == info.entries);
    if let Some(m) = &j.metadata {
        match declared {
            Some(Some(c)) if c != info.entries => {
                return Err(BodyError::CountMismatch {
                    by: "metadata",
                    announced: c,
                    read: info.entries,
                });
            }
            None if m.required => {
                return Err(BodyError::EndMissing {
                    missing: format!("its metadata line (`\"{}\":\"{}\"`)", m.field, m.value),
                    read: info.entries,
                });
            }
            _ => {}
        }
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threatfox_separators_are_normalised() {
        let b = br#""2024-07-16 05:25:36", "1301610", "8.134.12.90:7777", "A,B""#;
        assert_eq!(
            normalise_quote_comma_space(b),
            br#""2024-07-16 05:25:36","1301610","8.134.12.90:7777","A,B""#.to_vec()
        );
    }

    #[test]
    fn comment_header_skips_bare_comment_lines() {
        let def = crate::sources::lists::builtin_defs()
            .into_iter()
            .find(|d| d.name == "sslbl")
            .unwrap();
        let body =
            b"# banner\n# Firstseen,DstIP,DstPort\n#\n2022-07-28 10:53:43,62.210.57.2,1284\r\n";
        let mut seen = Vec::new();
        let info = read_body(&def, body, &mut |cols, rec, pos| {
            seen.push((
                rec.get(cols.ip.as_ref().unwrap()).unwrap().into_owned(),
                pos,
            ));
            Ok(())
        })
        .unwrap();
        assert_eq!(info.entries, 1);
        assert_eq!(seen, vec![("62.210.57.2".to_string(), Pos::Line(4))]);
    }

    #[test]
    fn trailer_check() {
        let b = b"# x\n\"a\"\n# END 1 entries";
        assert!(check_trailer(b, Some("# END {n} entries"), true, 1).is_ok());
        assert!(check_trailer(b, Some("# END {n} entries"), true, 2).is_err());
        let cut = b"# x\n\"a\"\n\"b";
        assert!(check_trailer(cut, Some("# END {n} entries"), true, 2).is_err());
        assert!(check_trailer(cut, Some("# END {n} entries"), false, 2).is_ok());
    }

    #[test]
    fn json_errors_are_recognised() {
        let v: Value =
            serde_json::from_str(r#"{"query_status":"ratelimited","msg":"slow down"}"#).unwrap();
        assert_eq!(json_error(&v).unwrap(), "ratelimited: slow down");
        let v: Value = serde_json::from_str(r#"{"error":"bad key"}"#).unwrap();
        assert_eq!(json_error(&v).unwrap(), "bad key");
        let v: Value = serde_json::from_str(r#"{"query_status":"ok","data":[]}"#).unwrap();
        assert!(json_error(&v).is_none());
    }
}
