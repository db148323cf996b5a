//! Reading a whole file without trusting it: only regular files (a device such as `/dev/zero`,
//! a pipe or a folder would make `std::fs::read` grow without bound or block), sized from the
//! file system before anything is reserved, and a reservation that fails is an error rather than
//! an abort.

use std::io::Read;
use std::path::Path;

use crate::{Error, Result};

/// The bytes of the regular file at `path`.
pub(crate) fn read_regular_file(path: &Path) -> Result<Vec<u8>> {
    let io = |source| Error::Io { path: path.to_path_buf(), source };
    let file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        let what = if meta.is_dir() { "a folder" } else { "not a regular file (a device or a pipe?)" };
        return Err(Error::Format { path: path.to_path_buf(), problem: format!("{what}, not a data file") });
    }
    let len = usize::try_from(meta.len()).unwrap_or(usize::MAX);
    let mut bytes = Vec::new();
    bytes.try_reserve_exact(len).map_err(|_| Error::Format {
        path: path.to_path_buf(),
        problem: format!("{} bytes: more than this machine can hold in memory", meta.len()),
    })?;
    // At most what the file system said (a file growing meanwhile is read as it was).
    file.take(meta.len()).read_to_end(&mut bytes).map_err(io)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_folders_are_refused_at_once() {
        for (path, expected) in [("/dev/zero", "not a regular file"), ("/", "a folder")] {
            if Path::new(path).exists() {
                let e = read_regular_file(Path::new(path)).unwrap_err().to_string();
                assert!(e.starts_with(path) && e.contains(expected), "{e}");
            }
        }
        let dir = std::env::temp_dir().join(format!("hdm-files-{}", std::process::id()));
        std::fs::write(&dir, b"abc").unwrap();
        assert_eq!(read_regular_file(&dir).unwrap(), b"abc");
        std::fs::remove_file(&dir).unwrap();
        assert!(matches!(read_regular_file(&dir), Err(Error::Io { .. })));
    }
}
