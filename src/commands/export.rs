//! `outwatch export --jsonl` and `outwatch restore FILE`: every finding with its history, as
//! JSON lines, so nothing is lost to a broken store or an upgrade.

use crate::outln;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::process::ExitCode;

use crate::app::App;
use crate::cli::{ExportArgs, RestoreArgs};
use crate::error::CliError;
use crate::finding::Finding;
use crate::pipeline::{Apply, Ending, RunKind};
use crate::sources::{ReadError, RowError, RowSink};
use crate::store::Reading;

pub(crate) fn export(app: &App, a: &ExportArgs) -> Result<ExitCode, CliError> {
    let store = app.open_read()?;
    // To stdout, a reader that went away (`export --jsonl | head -1`) ends the export quietly
    // with 0, as for every read command ([`crate::output::line`]); to a file it is a failure.
    let to_stdout = a.output.is_none();
    let write_failed = |e: std::io::Error| {
        if to_stdout && e.kind() == std::io::ErrorKind::BrokenPipe {
            CliError::stdout_closed()
        } else {
            CliError::failure(format!("writing the export failed: {e}"))
        }
    };
    let out: Box<dyn Write> = match &a.output {
        Some(p) => Box::new(
            // Breached mail addresses and our exposures: owner-only, like the store.
            crate::files::create_private(p)
                .map_err(|e| CliError::failure(format!("cannot create {}: {e}", p.display())))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut w = BufWriter::new(out);
    let mut n = 0usize;
    let mut io_err = None;
    store
        .for_each(&mut |f| {
            if let Err(e) = crate::output::write_shown(&mut w, &f).and_then(|()| w.write_all(b"\n"))
            {
                io_err = Some(e);
                return Err(crate::store::StoreError::Refused(
                    "the export stopped".into(),
                ));
            }
            n += 1;
            Ok(())
        })
        .map_err(|e| match io_err.take() {
            Some(io) => write_failed(io),
            None => CliError::from(e),
        })?;
    w.flush().map_err(write_failed)?;
    eprintln!("exported {n} findings");
    Ok(ExitCode::SUCCESS)
}

/// `outwatch restore FILE`: one unit of the apply path (run `restore`), all or nothing: a
/// file that cannot be read to its end restores nothing. A line that is no finding is skipped
/// and named (a rejected row); the others are written as given, life cycle included.
pub(crate) fn restore(app: &App, a: &RestoreArgs) -> Result<ExitCode, CliError> {
    let shown = a.file.display().to_string();
    // The input first: a mistyped file name creates no empty store.
    let reader: Box<dyn BufRead> = if a.file.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin().lock()))
    } else {
        Box::new(BufReader::new(File::open(&a.file).map_err(|e| {
            CliError::failure(format!("cannot open {shown}: {e}"))
        })?))
    };
    let store = app.open_store()?;
    let apply = Apply::new(store, RunKind::Restore, app.clock.now());
    let read = |sink: &mut dyn RowSink| read_lines(reader, &shown, sink);
    let clock = app.clock.clone();
    let (run, _, bad) = apply
        .only_streamed(
            Reading::WholeOrNothing,
            read,
            |_| Ending::default(),
            &|| clock.now(),
        )?
        .map_err(|e| CliError::failure(format!("nothing was restored: {e}")))?;
    outln!("restored {} findings", run.accepted);
    for b in bad.iter().take(20) {
        eprintln!("skipped {}", crate::text::Clean(b));
    }
    if bad.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(CliError::failure(format!(
            "{} line(s) could not be read",
            bad.len()
        )))
    }
}

/// Reads JSON lines of findings into `sink`: the lines read and those that were no finding.
fn read_lines(
    reader: Box<dyn BufRead>,
    shown: &str,
    sink: &mut dyn RowSink,
) -> Result<(usize, Vec<String>), ReadError> {
    let (mut rows, mut bad) = (0, Vec::new());
    for (i, line) in reader.lines().enumerate() {
        let line =
            line.map_err(|e| ReadError::Unreadable(format!("reading line {}: {e}", i + 1)))?;
        if line.trim().is_empty() {
            continue;
        }
        rows += 1;
        match serde_json::from_str::<Finding>(&line) {
            Ok(mut f) => {
                // Never trust a fingerprint from a file: recompute it from the fields.
                f.seal();
                sink.owned(&f)?;
            }
            Err(e) => {
                bad.push(format!("line {}: {e}", i + 1));
                sink.rejected(RowError {
                    location: format!("{shown}:{}", i + 1),
                    message: e.to_string(),
                });
            }
        }
    }
    Ok((rows, bad))
}
