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

/// A file [`replace_file_retiring`] put in place. The file that fell off the end of the kept
/// ones waits under a temp name and is removed when this is dropped: freeing a large file's blocks
/// can take as long as writing it (ext4 mounted with `discard`: about 1 s for 1.5 GB), and the new
/// file is already safe, so a caller can report the save done first.
#[derive(Debug)]
pub struct Replaced {
    /// The new file's size.
    pub size: u64,
    retired: Option<PathBuf>,
}

impl Drop for Replaced {
    fn drop(&mut self) {
        if let Some(old) = self.retired.take() {
            if let Err(e) = fs::remove_file(&old) {
                tracing::warn!(target: "neuron_host::fs", "cannot remove the replaced file {}: {e}", old.display());
            }
        }
    }
}

/// Writes a temp file beside `path` with `fill`, fsyncs it, shifts the kept
/// previous files down by one and moves the current file to the first of them
/// (`keep_previous`), renames the temp file into place and fsyncs the
/// directory. Every step is a rename, so a crash at any point leaves complete
/// files only (at worst a gap in the kept ones). On any error the temp file is removed and `path` is
/// untouched. Returns the new file's size.
pub fn replace_file(path: &Path, how: Replace<'_>, fill: impl FnOnce(&mut File) -> io::Result<()>) -> io::Result<u64> {
    replace_file_retiring(path, how, fill).map(|r| r.size)
}

/// [`replace_file`], leaving the removal of the oldest kept file, the one that drops out, to the
/// returned [`Replaced`]: until then it lives as `.NAME.old.PID` beside `path` (a process killed in
/// between leaves it for the caller's next start to remove). With nothing kept, the old file goes
/// in the final rename, as with [`replace_file`]: no copy of a replaced keyfile is ever left behind.
pub fn replace_file_retiring(
    path: &Path,
    how: Replace<'_>,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<Replaced> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    let tmp = temp_beside(path, "tmp");
    let mut retired = None;
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
        if let (Some(oldest), true) = (how.keep_previous.last(), path.exists()) {
            // The file that drops out keeps its blocks under a temp name for now.
            let old = temp_beside(path, "old");
            let _ = fs::remove_file(&old);
            if fs::rename(oldest, &old).is_ok() {
                retired = Some(old);
            }
        }
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
    match result {
        Ok(size) => Ok(Replaced { size, retired }),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            if let Some(old) = retired {
                // Back into its place if that is still free, else it was shifted out for good.
                match how.keep_previous.last() {
                    Some(oldest) if !oldest.exists() => {
                        let _ = fs::rename(&old, oldest);
                    }
                    _ => {
                        let _ = fs::remove_file(&old);
                    }
                }
            }
            Err(e)
        }
    }
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

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<_> =
            fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name().into_string().unwrap()).collect();
        v.sort();
        v
    }

    #[test]
    fn the_file_that_drops_out_is_removed_only_when_the_caller_lets_go() {
        use io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.pth");
        let kept = [dir.path().join("c.pth.prev"), dir.path().join("c.pth.prev.2")];
        let how = Replace { mode: None, keep_previous: &kept };
        for n in 1..=3u8 {
            replace_file(&path, how, |f| f.write_all(&[n])).unwrap();
        }
        let old = format!(".c.pth.old.{}", std::process::id());
        let replaced = replace_file_retiring(&path, how, |f| f.write_all(&[4])).unwrap();
        assert_eq!(replaced.size, 1);
        // The new file and the kept ones are in place before the oldest is gone.
        assert_eq!(fs::read(&path).unwrap(), [4]);
        assert_eq!(fs::read(&kept[0]).unwrap(), [3]);
        assert_eq!(fs::read(&kept[1]).unwrap(), [2]);
        assert_eq!(fs::read(dir.path().join(&old)).unwrap(), [1]);
        drop(replaced);
        assert_eq!(names(dir.path()), ["c.pth", "c.pth.prev", "c.pth.prev.2"]);

        // Nothing kept: no copy of the old file is left anywhere, even before the drop.
        let single = dir.path().join("s");
        write_atomically(&single, b"one").unwrap();
        let replaced = replace_file_retiring(&single, Replace::default(), |f| f.write_all(b"two")).unwrap();
        assert_eq!(names(dir.path()), ["c.pth", "c.pth.prev", "c.pth.prev.2", "s"]);
        drop(replaced);
        assert_eq!(fs::read(&single).unwrap(), b"two");

        // A failed write leaves every file as it was.
        let err = replace_file_retiring(&path, how, |_| Err(io::Error::other("disk full")));
        assert!(err.is_err());
        assert_eq!(fs::read(&kept[1]).unwrap(), [2]);
        assert_eq!(names(dir.path()), ["c.pth", "c.pth.prev", "c.pth.prev.2", "s"]);
    }
}
