//! The notes the archive's database did not take by shutdown, kept in a file (JSON lines, one
//! row each) until the next start writes them, first of all. A spool the next start cannot
//! write yet stays, and the next shutdown adds to it: nothing in it is dropped until the
//! database holds it. The rows' versions decide as always, so a spooled row never overwrites a
//! newer one another replica wrote meanwhile.

use std::io::{BufRead, Write};
use std::path::Path;

use super::store::StoredNote;

/// Longest line read back: a row holds a document the service bounds at 1 MiB, twice.
const MAX_LINE: usize = 4 << 20;

/// Adds `rows` to the spool at `path`: the file is written whole beside it and renamed over
/// it, synced first, so a crash leaves the old spool or the new one, never half of one.
pub fn save(path: &Path, rows: &[StoredNote]) -> std::io::Result<usize> {
    let mut all = load(path)?;
    let before = all.len();
    all.extend(
        rows.iter()
            .map(|row| serde_json::to_string(row).map_err(std::io::Error::other))
            .collect::<Result<Vec<_>, _>>()?,
    );
    let tmp = path.with_extension("spool.tmp");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    for line in &all {
        writeln!(file, "{line}")?;
    }
    file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(all.len() - before)
}

/// The spool's rows, as lines (none where there is no spool).
fn load(path: &Path) -> std::io::Result<Vec<String>> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut lines = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line?;
        if line.len() > MAX_LINE {
            return Err(std::io::Error::other(format!("a line of {} bytes, over {MAX_LINE}", line.len())));
        }
        if !line.trim().is_empty() {
            lines.push(line);
        }
    }
    Ok(lines)
}

/// The spool's rows, to write; an unreadable row is an error, so the spool is kept for a person
/// to look at rather than dropped.
pub fn rows(path: &Path) -> std::io::Result<Vec<StoredNote>> {
    load(path)?
        .iter()
        .enumerate()
        .map(|(i, line)| serde_json::from_str(line).map_err(|e| std::io::Error::other(format!("line {}: {e}", i + 1))))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_missing_spool_holds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert!(super::rows(&dir.path().join("none.spool")).unwrap().is_empty());
    }
}
