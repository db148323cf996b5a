//! Writing a file so that readers see the old content or the new one, never a part: a temporary
//! file in the same folder, written, flushed to disk, then renamed over the target.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Error, Result};

/// A file being written in place of `target`. Dropped without [`commit`](AtomicFile::commit), it
/// removes its temporary file and leaves `target` as it was.
pub(crate) struct AtomicFile {
    target: PathBuf,
    tmp: PathBuf,
    file: Option<File>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_path_buf(), source }
}

impl AtomicFile {
    /// Creates the temporary file `.<name>.tmp-<pid>-<n>` beside `target`.
    pub(crate) fn create(target: &Path) -> Result<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = target.file_name().ok_or_else(|| Error::Io {
            path: target.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"),
        })?;
        let dir = parent(target);
        remove_stale(dir, name);
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let mut tmp_name = std::ffi::OsString::from(".");
            tmp_name.push(name);
            tmp_name.push(format!(".tmp-{}-{n}", std::process::id()));
            let tmp = dir.join(tmp_name);
            match OpenOptions::new().write(true).create_new(true).open(&tmp) {
                Ok(file) => return Ok(AtomicFile { target: target.to_path_buf(), tmp, file: Some(file) }),
                // Left by a crashed writer with our pid: try the next name.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io(target)(e)),
            }
        }
    }

    /// The temporary file's path.
    #[cfg(test)]
    pub(crate) fn tmp_path(&self) -> &Path {
        &self.tmp
    }

    /// Writes all of `bytes` to the temporary file. An error names the target (the file the
    /// user asked for), not the temporary file.
    pub(crate) fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        let file = self.file.as_mut().expect("open until commit");
        file.write_all(bytes).map_err(io(&self.target))
    }

    /// Flushes the temporary file to disk, renames it over the target and flushes the folder,
    /// so that after a crash the target is either the old file or the whole new one.
    pub(crate) fn commit(self) -> Result<()> {
        self.commit_with(|| Ok(()))
    }

    /// [`commit`](AtomicFile::commit) with `before_rename` run between the flush and the rename
    /// (tests inject failures there).
    pub(crate) fn commit_with(mut self, before_rename: impl FnOnce() -> std::io::Result<()>) -> Result<()> {
        let file = self.file.take().expect("open until commit");
        file.sync_all().map_err(io(&self.target))?;
        drop(file);
        before_rename().map_err(io(&self.target))?;
        std::fs::rename(&self.tmp, &self.target).map_err(io(&self.target))?;
        // The rename is done: nothing to clean up any more.
        self.tmp = PathBuf::new();
        sync_dir(parent(&self.target)).map_err(io(parent(&self.target)))
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            self.file = None;
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Removes the temporary files of `name` in `dir` left by writers that died before committing
/// (`.<name>.tmp-<pid>-<n>` whose process is gone). Where processes cannot be looked up (no
/// `/proc`), nothing is removed.
fn remove_stale(dir: &Path, name: &std::ffi::OsStr) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(name);
    prefix.push(".tmp-");
    let (Some(prefix), Ok(entries)) = (prefix.to_str(), std::fs::read_dir(dir)) else { return };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix(prefix)) else { continue };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if pid != std::process::id() && !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Makes a rename in `dir` durable (a no-op where folders cannot be opened, as on Windows).
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Writes `bytes` to `path` atomically.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = AtomicFile::create(path)?;
    f.write_all(bytes)?;
    f.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        v.sort();
        v
    }

    #[test]
    fn replaces_the_target_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a.bin");
        write_atomic(&target, b"old").unwrap();
        write_atomic(&target, b"new content").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new content");
        assert_eq!(entries(dir.path()), ["a.bin"]);
    }

    #[test]
    fn a_failure_before_the_rename_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a.bin");
        write_atomic(&target, b"old").unwrap();
        let mut f = AtomicFile::create(&target).unwrap();
        f.write_all(b"half of the new").unwrap();
        let tmp = f.tmp_path().to_path_buf();
        assert!(tmp.starts_with(dir.path()), "the temporary file is in the target's folder");
        assert_eq!(std::fs::read(&tmp).unwrap(), b"half of the new");
        let err = f.commit_with(|| Err(std::io::Error::other("disk on fire"))).unwrap_err();
        assert!(err.to_string().contains("disk on fire"));
        assert_eq!(std::fs::read(&target).unwrap(), b"old");
        assert_eq!(entries(dir.path()), ["a.bin"], "the temporary file is removed");
    }

    #[test]
    fn a_crash_while_writing_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a.bin");
        write_atomic(&target, b"old").unwrap();
        let mut f = AtomicFile::create(&target).unwrap();
        f.write_all(b"partial").unwrap();
        std::mem::forget(f); // as if the process died here: no cleanup at all
        assert_eq!(std::fs::read(&target).unwrap(), b"old");
        assert_eq!(entries(dir.path()).len(), 2, "the stray temporary file is beside it");
        write_atomic(&target, b"next").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"next");
    }

    #[test]
    fn stale_temporary_files_of_dead_writers_are_removed_by_the_next_save() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a.bin");
        // pid 4294967 is above Linux's largest (2^22): no such process.
        for stale in [".a.bin.tmp-4294967-0", ".a.bin.tmp-4294967-7"] {
            std::fs::write(dir.path().join(stale), b"half").unwrap();
        }
        // Ours (a writer of this process) and another file's are left alone.
        let mine = format!(".a.bin.tmp-{}-999", std::process::id());
        std::fs::write(dir.path().join(&mine), b"busy").unwrap();
        std::fs::write(dir.path().join(".b.bin.tmp-4294967-0"), b"other").unwrap();
        write_atomic(&target, b"new").unwrap();
        let mut expected = vec![".b.bin.tmp-4294967-0".to_string(), "a.bin".to_string()];
        if !Path::new("/proc/self").exists() {
            expected.extend([".a.bin.tmp-4294967-0".into(), ".a.bin.tmp-4294967-7".into()]);
        }
        expected.push(mine);
        expected.sort();
        assert_eq!(entries(dir.path()), expected);
    }

    #[test]
    fn a_missing_folder_is_an_error_naming_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("no/such/dir/a.bin");
        match write_atomic(&target, b"x") {
            Err(Error::Io { path, .. }) => assert_eq!(path, target),
            other => panic!("{other:?}"),
        }
    }
}
