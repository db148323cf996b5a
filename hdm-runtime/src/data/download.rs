//! Fetching MNIST from a public mirror (the `download` feature): HTTPS with a progress bar, each
//! file checked against its published SHA-256 before it takes its final name.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

use super::{find_mnist_files, load_mnist, Dataset, MNIST_FILES};
use crate::atomic::AtomicFile;
use crate::{Error, Float, Result};

/// The mirrors tried in turn, each holding the four `.gz` files: the one torchvision uses first,
/// then the one TensorFlow uses.
pub const MNIST_MIRRORS: [&str; 2] =
    ["https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/"];

/// The official MNIST archives and their SHA-256 (the test-set values are also those of
/// `../shared/data/mnist`, which holds the official test set unchanged).
pub const MNIST_SHA256: [(&str, &str); 4] = [
    ("train-images-idx3-ubyte.gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
    ("train-labels-idx1-ubyte.gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
    ("t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
    ("t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
];

/// Downloads into `dir` (created if needed) those of the four MNIST files that are not there
/// yet, raw or `.gz`. Each is fetched from the first of [`MNIST_MIRRORS`] that answers, shown with
/// a progress bar on a terminal, and kept only if its SHA-256 is the official one; the file
/// appears under its final name only once complete and checked.
///
/// On a machine without network access the error says so and how to provide the files by hand.
pub fn download_mnist(dir: impl AsRef<Path>) -> Result<()> {
    download_mnist_from(dir, &MNIST_MIRRORS)
}

/// [`download_mnist`] from other mirrors: URLs of folders (ending in `/`) holding the four
/// official `.gz` files, tried in turn.
pub fn download_mnist_from(dir: impl AsRef<Path>, mirrors: &[&str]) -> Result<()> {
    let dir = dir.as_ref();
    let present = find_mnist_files(dir);
    if present.iter().all(Option::is_some) {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.to_path_buf(), source })?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(15)))
        .timeout_recv_body(Some(Duration::from_secs(60)))
        .build()
        .into();
    for ((stem, found), (file, sha256)) in MNIST_FILES.iter().zip(&present).zip(MNIST_SHA256) {
        debug_assert!(file.starts_with(stem));
        if found.is_some() {
            continue;
        }
        let target = dir.join(file);
        let mut failures = Vec::new();
        for mirror in mirrors {
            let url = format!("{mirror}{file}");
            match fetch(&agent, &url, &target, sha256) {
                Ok(()) => break,
                Err(problem) => failures.push(format!("{url}: {problem}")),
            }
        }
        if failures.len() == mirrors.len() {
            let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
            return Err(Error::Io {
                path: target,
                source: std::io::Error::other(format!(
                    "could not download {file}:\n  {}\nIf this machine is offline, copy the four MNIST files \
                     ({}, each raw or .gz) into {} by hand, or point --data or HDM_DATA_DIR at a folder that \
                     holds them",
                    failures.join("\n  "),
                    MNIST_FILES.join(", "),
                    absolute.display()
                )),
            });
        }
    }
    Ok(())
}

/// [`load_mnist`], downloading the files first when some are missing from `dir`.
pub fn load_mnist_or_download<T: Float>(dir: impl AsRef<Path>) -> Result<(Dataset<T>, Dataset<T>)> {
    let dir = dir.as_ref();
    if find_mnist_files(dir).iter().any(Option::is_none) {
        download_mnist(dir)?;
    }
    load_mnist(dir)
}

/// Downloads `url` into `target` through a temporary file, checking the SHA-256; the error is
/// phrased for the user (it never names a half-written file: that one is removed).
fn fetch(agent: &ureq::Agent, url: &str, target: &Path, sha256: &str) -> std::result::Result<(), String> {
    let mut response = agent.get(url).call().map_err(|e| match e {
        ureq::Error::StatusCode(code) => format!("the server answered HTTP {code}"),
        ureq::Error::Io(e) => format!("no connection ({e})"),
        other => format!("no answer ({other})"),
    })?;
    let total = response.body().content_length();
    let bar = ProgressBar::new(total.unwrap_or(0));
    bar.set_style(
        ProgressStyle::with_template("{msg:28} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());

    let mut out = AtomicFile::create(target).map_err(|e| e.to_string())?;
    let mut hasher = Sha256::new();
    let mut reader = response.body_mut().as_reader();
    let mut buf = vec![0u8; 64 * 1024];
    let mut received = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                bar.abandon();
                return Err(format!("the download broke off after {received} bytes ({e})"));
            }
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(|e| e.to_string())?;
        received += n as u64;
        bar.set_position(received);
    }
    bar.finish();
    let got = hex(&hasher.finalize());
    if got != sha256 {
        return Err(format!("SHA-256 is {got}, expected {sha256} (a corrupted or different file; not kept)"));
    }
    out.commit().map_err(|e| e.to_string())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_the_shared_test_files_matches_the_official_values() {
        // The shared folder holds the official test set unchanged (its README), so two of the
        // hashes can be checked here; this also checks the hashing and hex code.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/mnist");
        let dir = std::env::var_os("HDM_DATA_DIR").map(Into::into).unwrap_or(dir);
        for (file, expected) in &MNIST_SHA256[2..] {
            let Ok(bytes) = std::fs::read(dir.join(file)) else {
                eprintln!("SKIPPED: {} not found", dir.join(file).display());
                continue;
            };
            assert_eq!(hex(&Sha256::digest(&bytes)), *expected, "{file}");
        }
        assert_eq!(hex(&Sha256::digest(b"abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn an_unreachable_mirror_gives_a_clear_error_and_no_file() {
        // Port 9 on the loopback interface: nothing listens there, the connection is refused.
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("t10k-labels-idx1-ubyte.gz");
        let agent: ureq::Agent =
            ureq::Agent::config_builder().timeout_connect(Some(Duration::from_secs(2))).build().into();
        let err = fetch(&agent, "http://127.0.0.1:9/t10k-labels-idx1-ubyte.gz", &target, "00").unwrap_err();
        assert!(err.contains("no connection"), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

        // The whole download: every mirror named, and what to do offline.
        let mirrors = ["http://127.0.0.1:9/", "http://127.0.0.1:9/mnist/"];
        let err = download_mnist_from(dir.path().join("mnist"), &mirrors).unwrap_err();
        let msg = err.to_string();
        eprintln!("{msg}");
        assert!(msg.contains("could not download train-images-idx3-ubyte.gz"), "{msg}");
        assert!(msg.contains("http://127.0.0.1:9/mnist/train-images-idx3-ubyte.gz: no connection"), "{msg}");
        assert!(msg.contains("offline") && msg.contains("HDM_DATA_DIR"), "{msg}");
        assert_eq!(std::fs::read_dir(dir.path().join("mnist")).unwrap().count(), 0, "no partial file");
    }
}
