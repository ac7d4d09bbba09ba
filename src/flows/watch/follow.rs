//! Following logs across rotation: which part of which file to read this run.
//!
//! A log read before is remembered by its mark ([`FileMark`]): size, modification time, device
//! and inode, how far it was read, its header lines, and a hash of its first bytes (its
//! *head*: Zeek's header with its `#open` time, or the first connection of a JSON log, tells
//! one log from the next). Each file the paths give now is one of:
//!
//! 1. unchanged: nothing to read;
//! 2. the log its own mark describes, grown (same inode, same head, not shorter than what was
//!    read): read on from the mark;
//! 3. a log marked under another path (same inode, or same head): it was renamed or
//!    compressed (`conn.log` → `conn.log.1` → `conn.log.2.gz`), and the paths match its new
//!    name too: read on from that mark, in the decompressed stream for gzip;
//! 4. new (or replaced at its path: another inode, another head, or shorter — re-created,
//!    `copytruncate`d): read whole; a log that lost its header to `copytruncate` is read
//!    behind the header its path's mark kept.
//!
//! A mark whose log is no longer at its path and that no file of the paths continued (the log
//! was renamed to a name the paths do not match, or copied before a `copytruncate`) is looked
//! for next to it: a file of the same stem (`conn.log.1`, `conn.log.1.gz`, Zeek's
//! `conn.<time>.log`) in its folder or in the two newest dated folders beside it (zeekctl's
//! archive, `../2026-11-30/conn.10:00:00-11:00:00.log.gz`), with its inode or its head. What
//! was written to it after the mark is read from there, and nothing else of it. When it is
//! not found, a notice says that lines may be missing.

use std::collections::{BTreeMap, HashSet};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::STATE_PREFIX;
use crate::flows::run::{FileOutcome, Piece, Tail};

/// Bytes of a log's start hashed into its mark.
pub(crate) const HEAD: usize = 4096;
/// Most header bytes kept for a log (Zeek's header is well under 2 KiB).
const MAX_HEADER: usize = 64 * 1024;
/// Most files looked at when searching for a rotated log.
const MAX_CANDIDATES: usize = 64;

/// What is remembered of a file that was read (state `flows/file/<path>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMark {
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
    #[serde(default)]
    pub inode: u64,
    #[serde(default)]
    pub dev: u64,
    /// How far the log was read: the end of the last whole line of a plain log, the bytes
    /// of the decompressed stream of a gzip one.
    #[serde(default)]
    pub offset: u64,
    /// Its header lines, put before what is read on from `offset`.
    #[serde(default)]
    pub header: String,
    /// Whether it is gzip (complete when written: never looked for after it is gone).
    #[serde(default)]
    pub gzip: bool,
    /// How many of its first bytes (decompressed) are hashed in `head_hash` (0: unknown, a
    /// mark of an earlier version).
    #[serde(default)]
    pub head_len: u64,
    #[serde(default)]
    pub head_hash: String,
}

impl FileMark {
    fn of(meta: &std::fs::Metadata) -> FileMark {
        use std::os::unix::fs::MetadataExt;
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as i128);
        FileMark {
            size: meta.len(),
            mtime_ns,
            inode: meta.ino(),
            dev: meta.dev(),
            offset: 0,
            header: String::new(),
            gzip: false,
            head_len: 0,
            head_hash: String::new(),
        }
    }

    /// The same file, unchanged.
    fn unchanged(&self, now: &FileMark) -> bool {
        (self.size, self.mtime_ns, self.inode) == (now.size, now.mtime_ns, now.inode)
    }

    fn same_inode(&self, now: &FileMark) -> bool {
        self.inode == now.inode && (self.dev == 0 || self.dev == now.dev)
    }

    /// Whether `head` (a log's first bytes, decompressed) begins as this mark's log did.
    fn same_head(&self, head: &[u8]) -> bool {
        let n = usize::try_from(self.head_len).unwrap_or(usize::MAX);
        n == 0 || (head.len() >= n && hash(&head[..n]) == self.head_hash)
    }

    /// Whether a file, now `now` with `head`, is this mark's log, perhaps grown, moved or
    /// compressed: its head, and (plain) at least as long as what was read.
    fn continued_by(&self, now: &FileMark, head: &[u8]) -> bool {
        self.same_head(head) && (now.gzip || now.size >= self.offset)
    }
}

fn hash(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..16])
}

/// A file of the paths as it is now.
struct Probe {
    path: PathBuf,
    key: String,
    /// Its mark to be: size, time, inode, gzip, header, head.
    mark: FileMark,
    /// The end of its last whole line (plain).
    end: u64,
    /// Its first bytes (decompressed), at most [`HEAD`].
    head: Vec<u8>,
}

fn key_of(path: &Path) -> String {
    format!("{STATE_PREFIX}{}", path.display())
}

/// A log's first `max` bytes, decompressed when it is gzip (as much as a cut stream gives),
/// and whether it is gzip.
fn read_head(path: &Path, max: usize) -> std::io::Result<(Vec<u8>, bool)> {
    let f = crate::flows::read::open_regular(path).map_err(std::io::Error::other)?;
    let mut raw = std::io::BufReader::new(f);
    let gzip = std::io::BufRead::fill_buf(&mut raw)?.starts_with(&[0x1f, 0x8b]);
    let mut head = Vec::with_capacity(max.min(64 * 1024));
    let limit = max as u64;
    if gzip {
        let dec = flate2::bufread::MultiGzDecoder::new(raw);
        // A cut or damaged stream gives what it has.
        let _ = dec.take(limit).read_to_end(&mut head);
    } else {
        raw.take(limit).read_to_end(&mut head)?;
    }
    Ok((head, gzip))
}

/// The header lines at the start of `text`: Zeek's leading `#` lines, or nfdump's column
/// line; none for JSON lines.
fn header_of(text: &[u8]) -> &[u8] {
    let text = text.strip_prefix("\u{feff}".as_bytes()).unwrap_or(text);
    let mut header = 0;
    if text.first() == Some(&b'#') {
        for line in text.split_inclusive(|&b| b == b'\n') {
            if !line.starts_with(b"#") || !line.ends_with(b"\n") {
                break;
            }
            header += line.len();
        }
    } else if text.first() != Some(&b'{')
        && let Some(nl) = text.iter().position(|&b| b == b'\n')
    {
        header = nl + 1;
    }
    &text[..header]
}

/// The end of the last whole line of a plain file of `size` bytes.
fn last_line_end(path: &Path, size: u64) -> std::io::Result<u64> {
    use std::io::{Seek, SeekFrom};
    let mut f = crate::flows::read::open_regular(path).map_err(std::io::Error::other)?;
    let mut end = size;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let start = end.saturating_sub(buf.len() as u64);
        let n = (end - start) as usize;
        if n == 0 {
            return Ok(0);
        }
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut buf[..n])?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
}

fn probe(path: &Path, meta: &std::fs::Metadata) -> std::io::Result<Probe> {
    let mut mark = FileMark::of(meta);
    let (head, gzip) = read_head(path, MAX_HEADER)?;
    mark.gzip = gzip;
    mark.header = String::from_utf8_lossy(header_of(&head)).into_owned();
    let n = head.len().min(HEAD);
    mark.head_len = n as u64;
    mark.head_hash = hash(&head[..n]);
    // Only the head is compared from here on: a first run over thousands of files holds
    // 4 KiB of each, not 64.
    let mut head = head;
    head.truncate(n);
    let end = if gzip {
        0
    } else {
        last_line_end(path, mark.size)?
    };
    Ok(Probe {
        key: key_of(path),
        path: path.to_path_buf(),
        mark,
        end,
        head,
    })
}

/// One file to read, and the mark to write once it was read (`None` for a rotated copy
/// outside the paths).
pub(crate) struct ReadPart {
    pub piece: Piece,
    pub mark: Option<(String, FileMark)>,
}

/// What to do this run.
#[derive(Default)]
pub(crate) struct Plan {
    pub reads: Vec<ReadPart>,
    /// Marks to write (or delete) whatever is read.
    pub state: Vec<(String, Option<Vec<u8>>)>,
    pub notices: Vec<String>,
    pub unreadable: Vec<FileOutcome>,
}

fn encode(mark: &FileMark) -> Vec<u8> {
    serde_json::to_vec(mark).expect("a mark serialises")
}

/// Plans the run: which part of each file of `files` to read, given the marks of the last
/// runs (see the module documentation).
pub(crate) fn plan(files: &[PathBuf], marks: &BTreeMap<String, FileMark>) -> Plan {
    let mut plan = Plan::default();
    let mut claimed: HashSet<String> = HashSet::new();
    let mut probes = Vec::new();
    for f in files {
        let fail = |e: std::io::Error| FileOutcome {
            path: f.display().to_string(),
            stats: None,
            error: Some(e.to_string()),
        };
        let key = key_of(f);
        let meta = match std::fs::metadata(f) {
            Ok(m) => m,
            Err(e) => {
                // Its mark stays as it is until the file can be read again.
                claimed.insert(key);
                plan.unreadable.push(fail(e));
                continue;
            }
        };
        if marks
            .get(&key)
            .is_some_and(|k| k.unchanged(&FileMark::of(&meta)))
        {
            claimed.insert(key);
            continue;
        }
        match probe(f, &meta) {
            Ok(p) => probes.push(p),
            Err(e) => {
                claimed.insert(key);
                plan.unreadable.push(fail(e));
            }
        }
    }
    let continues = match_marks(&probes, marks, &mut claimed);
    for (p, from) in probes.iter().zip(continues) {
        read_probe(&mut plan, p, from.map(|k| &marks[&k]), marks.get(&p.key));
    }
    let current: HashSet<&Path> = files.iter().map(PathBuf::as_path).collect();
    for (key, m) in marks {
        if !claimed.contains(key) {
            follow_rotated(&mut plan, key, m, &current);
        }
        if !current.contains(Path::new(&key[STATE_PREFIX.len()..])) {
            plan.state.push((key.clone(), None));
        }
    }
    plan
}

/// For each probe, the key of the mark whose log it continues: its own (the same file grown),
/// another with its inode (renamed), another with its head (copied, compressed).
fn match_marks(
    probes: &[Probe],
    marks: &BTreeMap<String, FileMark>,
    claimed: &mut HashSet<String>,
) -> Vec<Option<String>> {
    let mut out: Vec<Option<String>> = vec![None; probes.len()];
    type Test = fn(&FileMark, &Probe) -> bool;
    let passes: [(bool, Test); 3] = [
        (true, |m, p| {
            m.same_inode(&p.mark) && m.continued_by(&p.mark, &p.head)
        }),
        (false, |m, p| {
            m.same_inode(&p.mark) && m.continued_by(&p.mark, &p.head)
        }),
        (false, |m, p| {
            m.head_len > 0 && m.continued_by(&p.mark, &p.head)
        }),
    ];
    for (own, test) in passes {
        for (i, p) in probes.iter().enumerate() {
            if out[i].is_some() {
                continue;
            }
            let found = if own {
                marks
                    .get_key_value(&p.key)
                    .filter(|(k, m)| !claimed.contains(*k) && test(m, p))
            } else {
                marks
                    .iter()
                    .find(|(k, m)| **k != p.key && !claimed.contains(*k) && test(m, p))
            };
            if let Some((k, _)) = found {
                claimed.insert(k.clone());
                out[i] = Some(k.clone());
            }
        }
    }
    out
}

/// Plans the read of one changed file: on from `from` (the mark of the log it continues), or
/// whole; `own` is the mark its path had (for the header a `copytruncate`d log lost).
fn read_probe(plan: &mut Plan, p: &Probe, from: Option<&FileMark>, own: Option<&FileMark>) {
    let mut mark = p.mark.clone();
    let (start, header) = match from {
        Some(m) if m.offset > 0 => (m.offset, m.header.clone()),
        _ => {
            // Read whole: behind its path's old header when the log lost its own.
            let lost = own
                .map(|o| o.header.as_str())
                .filter(|h| !h.is_empty() && !starts_like(&p.head, h));
            (0, lost.unwrap_or_default().to_string())
        }
    };
    if !header.is_empty() {
        mark.header = header.clone();
    }
    let to = (!p.mark.gzip).then_some(p.end);
    mark.offset = to.unwrap_or(start);
    if to.is_some_and(|t| t <= start) {
        // Changed, but no new whole line yet: remember the file as it is now.
        mark.offset = start;
        plan.state.push((p.key.clone(), Some(encode(&mark))));
        return;
    }
    plan.reads.push(ReadPart {
        piece: Piece {
            path: p.path.clone(),
            tail: Some(Tail {
                header: if start > 0 || !header.is_empty() {
                    header.into_bytes()
                } else {
                    Vec::new()
                },
                from: start,
                to,
            }),
        },
        mark: Some((p.key.clone(), mark)),
    });
}

/// Whether `head` begins with the first line of `header` (it has its own header).
fn starts_like(head: &[u8], header: &str) -> bool {
    let first = header.split_inclusive('\n').next().unwrap_or(header);
    head.starts_with(first.as_bytes())
}

/// A mark whose log no file of the paths continued: when its path now holds another log
/// (rotated) or nothing, look for the log next to it and read what was written after the
/// mark.
fn follow_rotated(plan: &mut Plan, key: &str, m: &FileMark, current: &HashSet<&Path>) {
    if m.gzip {
        return;
    }
    let path = Path::new(&key[STATE_PREFIX.len()..]);
    let here = std::fs::metadata(path).ok().filter(|x| x.is_file());
    if let Some(meta) = &here
        && !current.contains(path)
        && m.same_inode(&FileMark::of(meta))
    {
        // Still there, no longer in the paths: nothing was rotated.
        return;
    }
    let found = rotated_candidates(path, current)
        .into_iter()
        .find(|c| is_rotated_copy(m, c));
    match found {
        Some(c) => plan.reads.push(ReadPart {
            piece: Piece {
                path: c,
                tail: Some(Tail {
                    header: if m.offset > 0 {
                        m.header.clone().into_bytes()
                    } else {
                        Vec::new()
                    },
                    from: m.offset,
                    to: None,
                }),
            },
            mark: None,
        }),
        None if here.is_some() => plan.notices.push(format!(
            "{} was rotated and its old file was not found next to it: lines written to it \
             after the last run may be missing",
            crate::text::clip(&path.display().to_string(), 200)
        )),
        None => {}
    }
}

/// Whether the file `c` is the log of mark `m`, renamed, copied or compressed.
fn is_rotated_copy(m: &FileMark, c: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(c) else {
        return false;
    };
    let now = FileMark::of(&meta);
    if m.same_inode(&now) && now.size >= m.offset {
        return true;
    }
    if m.head_len == 0 {
        return false;
    }
    match read_head(c, HEAD) {
        Ok((head, gzip)) => {
            let now = FileMark { gzip, ..now };
            m.continued_by(&now, &head)
        }
        Err(_) => false,
    }
}

/// Files that may be `path` rotated: of its stem (`conn` of `conn.log`), in its folder and in
/// the two newest dated folders beside it, not among the paths' files, newest first.
fn rotated_candidates(path: &Path, current: &HashSet<&Path>) -> Vec<PathBuf> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.split('.').next().unwrap_or(&name).to_string();
    let mut dirs = vec![dir.clone()];
    if let Some(up) = dir.parent().filter(|u| !u.as_os_str().is_empty())
        && let Ok(rd) = std::fs::read_dir(up)
    {
        let mut dated: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.is_dir()
                    && p.file_name()
                        .is_some_and(|n| dated_name(&n.to_string_lossy()))
            })
            .collect();
        dated.sort();
        dirs.extend(dated.into_iter().rev().take(2));
    }
    let mut out: Vec<(std::time::SystemTime, PathBuf)> = Vec::new();
    for d in dirs {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten().take(10 * MAX_CANDIDATES) {
            let p = e.path();
            let n = e.file_name().to_string_lossy().into_owned();
            if p == path
                || n.starts_with('.')
                || !n.starts_with(&stem)
                || current.contains(p.as_path())
            {
                continue;
            }
            if let Ok(meta) = std::fs::metadata(&p)
                && meta.is_file()
            {
                out.push((meta.modified().unwrap_or(UNIX_EPOCH), p));
            }
        }
    }
    out.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    out.into_iter()
        .take(MAX_CANDIDATES)
        .map(|(_, p)| p)
        .collect()
}

/// `2026-11-30` and the like: digits and dashes, starting with a year.
fn dated_name(n: &str) -> bool {
    n.len() >= 8
        && n.bytes().take(4).all(|b| b.is_ascii_digit())
        && n.bytes().all(|b| b.is_ascii_digit() || b == b'-')
}
