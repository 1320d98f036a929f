//! Replacing a file so that a crash leaves the old file or the new one, never a mix.

use std::{
    fs::{self, File},
    io,
    path::{Path, PathBuf},
};

/// How [`replace_file`] writes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Replace<'a> {
    /// Unix permission bits for the new file (e.g. 0o600 for keys).
    pub mode: Option<u32>,
    /// Keep the files being replaced, newest first: the current file becomes
    /// `keep_previous[0]`, which becomes `keep_previous[1]`, and so on; the last
    /// one is replaced. Empty: nothing is kept.
    pub keep_previous: &'a [PathBuf],
}

fn temp_beside(path: &Path, what: &str) -> PathBuf {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    dir.join(format!(".{name}.{what}.{}", std::process::id()))
}

/// Writes a temp file beside `path` with `fill`, fsyncs it, shifts the kept
/// previous files down by one and moves the current file to the first of them
/// (`keep_previous`), renames the temp file into place and fsyncs the
/// directory. Every step is a rename, so a crash at any point leaves complete
/// files only (at worst a gap in the kept ones). On any error the temp file is removed and `path` is
/// untouched. Returns the new file's size.
pub fn replace_file(path: &Path, how: Replace<'_>, fill: impl FnOnce(&mut File) -> io::Result<()>) -> io::Result<u64> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    let tmp = temp_beside(path, "tmp");
    let result = (|| {
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        if let Some(mode) = how.mode {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(mode);
        }
        let mut file = options.open(&tmp)?;
        #[cfg(unix)]
        if let Some(mode) = how.mode {
            // The mode applies to new files only; clamp a leftover one too.
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(fs::Permissions::from_mode(mode))?;
        }
        fill(&mut file)?;
        file.sync_all()?;
        let size = file.metadata()?.len();
        drop(file);
        if let (Some(newest), true) = (how.keep_previous.first(), path.exists()) {
            for pair in how.keep_previous.windows(2).rev() {
                match fs::rename(&pair[0], &pair[1]) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            let prev_tmp = temp_beside(path, "prev");
            let _ = fs::remove_file(&prev_tmp);
            fs::hard_link(path, &prev_tmp).or_else(|_| fs::copy(path, &prev_tmp).map(|_| ()))?;
            fs::rename(&prev_tmp, newest)?;
        }
        fs::rename(&tmp, path)?;
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(size)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// [`replace_file`] with fixed bytes and default options.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use io::Write;
    replace_file(path, Replace::default(), |f| f.write_all(bytes)).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_keeps_the_previous_and_cleans_up_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let prev = dir.path().join("state.json.prev");
        write_atomically(&path, b"one").unwrap();
        replace_file(&path, Replace { mode: Some(0o600), keep_previous: std::slice::from_ref(&prev) }, |f| {
            use io::Write;
            f.write_all(b"two")
        })
        .unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::read(&prev).unwrap(), b"one");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let err = replace_file(&path, Replace::default(), |_| Err(io::Error::other("disk full")));
        assert!(err.is_err());
        assert_eq!(fs::read(&path).unwrap(), b"two", "a failed write leaves the file alone");
        let leftovers = fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .count();
        assert_eq!(leftovers, 0);
    }
}
