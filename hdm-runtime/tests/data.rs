//! The IDX reader and MNIST loader on files in a temporary folder (damaged in every way the
//! reader must catch), and on the real MNIST files of `../shared/data/mnist`.

use std::io::Write;
use std::path::{Path, PathBuf};

use hdm_runtime::data::{load_mnist, read_idx, Batcher, Dataset, MNIST_FILES};
use hdm_runtime::Error;

fn header(type_code: u8, dims: &[u32]) -> Vec<u8> {
    let mut v = vec![0, 0, type_code, dims.len() as u8];
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// `n` images of `rows x cols` whose pixel (i, p) is `(i + p) % 256`, and labels `i % 10`.
fn images(n: u32, rows: u32, cols: u32) -> Vec<u8> {
    let mut v = header(8, &[n, rows, cols]);
    v.extend((0..n * rows * cols).map(|k| ((k / (rows * cols) + k % (rows * cols)) % 256) as u8));
    v
}

fn labels(n: u32) -> Vec<u8> {
    let mut v = header(8, &[n]);
    v.extend((0..n).map(|i| (i % 10) as u8));
    v
}

/// A valid small MNIST folder: training files gzip-compressed, test files raw.
fn mnist_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("train-images-idx3-ubyte.gz"), gzip(&images(7, 4, 3))).unwrap();
    std::fs::write(p.join("train-labels-idx1-ubyte.gz"), gzip(&labels(7))).unwrap();
    std::fs::write(p.join("t10k-images-idx3-ubyte"), images(3, 4, 3)).unwrap();
    std::fs::write(p.join("t10k-labels-idx1-ubyte"), labels(3)).unwrap();
    dir
}

/// The file and problem of a format error.
fn format_error<T: std::fmt::Debug>(r: hdm_runtime::Result<T>) -> (PathBuf, String) {
    match r {
        Err(e @ Error::Format { .. }) => {
            let text = e.to_string();
            let Error::Format { path, problem } = e else { unreachable!() };
            assert!(text.starts_with(&path.display().to_string()), "the message names the file: {text}");
            eprintln!("{text}");
            (path, problem)
        }
        other => panic!("expected Error::Format, got {other:?}"),
    }
}

#[test]
fn small_mnist_folder_loads_with_any_count() {
    let dir = mnist_dir();
    let (train, test) = load_mnist::<f32>(dir.path()).unwrap();
    assert_eq!((train.len(), test.len(), train.rows, train.cols, train.features()), (7, 3, 4, 3, 12));
    assert_eq!(train.labels.to_vec(), [0, 1, 2, 3, 4, 5, 6]);
    assert_eq!(train.images[[5, 2]], 7.0 / 255.0);
    assert_eq!(test.images[[2, 11]], 13.0 / 255.0);
    let (train64, _) = load_mnist::<f64>(dir.path()).unwrap();
    assert_eq!(train64.images[[5, 2]], 7.0 / 255.0);
}

#[test]
fn damaged_files_are_errors_naming_file_and_problem() {
    let cases: Vec<(&str, &str, Vec<u8>, &str)> = vec![
        ("truncated header", "train-images-idx3-ubyte.gz", gzip(&images(7, 4, 3)[..9]), "truncated header"),
        ("truncated body", "train-images-idx3-ubyte.gz", gzip(&images(7, 4, 3)[..50]), "truncated"),
        ("wrong magic", "t10k-labels-idx1-ubyte", b"\x1f\x00\x08\x01\x00\x00\x00\x03abc".to_vec(), "bad magic"),
        ("float elements", "t10k-labels-idx1-ubyte", header(0x0D, &[0]), "only unsigned bytes"),
        ("bad gzip", "train-labels-idx1-ubyte.gz", b"\x1f\x8b\x08\x00garbage, not deflate".to_vec(), "gzip"),
        ("not gzip at all", "train-labels-idx1-ubyte.gz", labels(7), "not gzip"),
        ("cut gzip", "train-labels-idx1-ubyte.gz", gzip(&labels(7))[..20].to_vec(), "gzip"),
        ("trailing garbage", "t10k-images-idx3-ubyte", [images(3, 4, 3), b"junk".to_vec()].concat(), "4 unexpected"),
        ("label count", "t10k-labels-idx1-ubyte", labels(4), "holds 4 labels but"),
        ("images not 3-d", "t10k-images-idx3-ubyte", labels(3), "3 dimensions"),
        ("labels not 1-d", "train-labels-idx1-ubyte.gz", gzip(&images(7, 1, 1)), "1 dimension"),
    ];
    for (what, file, bytes, expected) in cases {
        let dir = mnist_dir();
        std::fs::write(dir.path().join(file), bytes).unwrap();
        let (path, problem) = format_error(load_mnist::<f32>(dir.path()));
        assert_eq!(path, dir.path().join(file), "{what}: the error names the damaged file");
        assert!(problem.contains(expected), "{what}: {problem:?} should contain {expected:?}");
    }
}

#[test]
fn empty_file_and_unreadable_path() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    let (path, problem) = format_error(read_idx(&empty));
    assert_eq!(path, empty);
    assert!(problem.contains("truncated header: 0 bytes"), "{problem}");
    match read_idx(dir.path().join("absent")) {
        Err(Error::Io { path, .. }) => assert_eq!(path, dir.path().join("absent")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn missing_files_list_what_was_expected_and_where() {
    let dir = mnist_dir();
    std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte")).unwrap();
    let err = load_mnist::<f32>(dir.path()).unwrap_err();
    let Error::Io { ref source, .. } = err else { panic!("{err:?}") };
    assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(msg.contains(": missing t10k-labels-idx1-ubyte[.gz]. The MNIST folder holds"), "{msg}");
    for name in MNIST_FILES {
        assert!(msg.contains(name), "{msg} lists {name}");
    }
    assert!(msg.contains(&dir.path().display().to_string()), "{msg} names the folder");
    assert!(msg.contains("HDM_DATA_DIR") && msg.contains("--data"), "{msg}");

    let nowhere = dir.path().join("no-such-folder");
    let msg = load_mnist::<f32>(&nowhere).unwrap_err().to_string();
    assert!(msg.contains("no-such-folder: no such folder. The MNIST folder holds train-images-idx3-ubyte,"), "{msg}");
}

/// The real data: `$HDM_DATA_DIR` if set (then the files must be there), else
/// `../shared/data/mnist` beside the checkout (skipped, saying so, when absent).
fn real_data_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("HDM_DATA_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/mnist");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("SKIPPED: no MNIST data (HDM_DATA_DIR is not set and {} does not exist)", dir.display());
        None
    }
}

#[test]
fn real_mnist_reads_with_the_expected_counts_and_values() {
    let Some(dir) = real_data_dir() else { return };
    let (train, test) = load_mnist::<f32>(&dir).unwrap_or_else(|e| panic!("{e}"));
    // ../shared/data/mnist/README.md: 10,000 training images (a subset), the official 10,000
    // test images.
    assert_eq!((train.len(), test.len()), (10_000, 10_000));
    for d in [&train, &test] {
        assert_eq!((d.rows, d.cols, d.features()), (28, 28, 784));
        assert!(d.images.iter().all(|&p| (0.0..=1.0).contains(&p)));
        assert_eq!(d.images.iter().cloned().fold(0.0f32, f32::max), 1.0);
        assert!(d.labels.iter().all(|&l| l < 10));
        assert_eq!(d.num_classes(), 10);
    }
    // Independent values, from Python's gzip module reading the same files (run once):
    //   b = gzip.open(f).read(); labels = list(b[8:28]); sum(b[16:16+784]) for image 0
    assert_eq!(
        train.labels.slice(ndarray::s![..20]).to_vec(),
        [1, 9, 0, 6, 6, 8, 5, 2, 0, 4, 2, 3, 2, 1, 0, 2, 7, 1, 2, 3]
    );
    assert_eq!(
        test.labels.slice(ndarray::s![..20]).to_vec(),
        [7, 2, 1, 0, 4, 1, 4, 9, 5, 9, 0, 6, 9, 0, 1, 5, 9, 7, 3, 4]
    );
    let class_counts =
        |d: &Dataset<f32>| (0..10).map(|c| d.labels.iter().filter(|&&l| l == c).count()).collect::<Vec<_>>();
    assert_eq!(class_counts(&train), [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]);
    assert_eq!(class_counts(&test), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
    let byte_sum =
        |d: &Dataset<f32>, i: usize| d.images.row(i).iter().map(|&p| (p * 255.0).round() as u64).sum::<u64>();
    assert_eq!((byte_sum(&train, 0), byte_sum(&train, 1)), (13283, 26362));
    assert_eq!((byte_sum(&test, 0), byte_sum(&test, 1)), (18454, 28850));
    // Row 14 of the first test image (a 7).
    let row14: Vec<u8> = test.images.row(0).iter().skip(14 * 28).take(28).map(|&p| (p * 255.0).round() as u8).collect();
    assert_eq!(&row14[16..20], [59, 249, 254, 62]);
    let total: u64 = (0..train.len()).map(|i| byte_sum(&train, i)).sum();
    assert_eq!(total, 262_146_600);

    // Every file on its own, through the IDX reader.
    let expected_dims: [&[usize]; 4] = [&[10_000, 28, 28], &[10_000], &[10_000, 28, 28], &[10_000]];
    for (name, dims) in MNIST_FILES.iter().zip(expected_dims) {
        let path = [dir.join(name), dir.join(format!("{name}.gz"))].into_iter().find(|p| p.is_file()).unwrap();
        let idx = read_idx(&path).unwrap();
        assert_eq!(idx.dims, dims, "{}", path.display());
        assert_eq!(idx.data.len(), dims.iter().product::<usize>());
    }

    // A full epoch of batches of 100 covers the training set once.
    let mut batches = Batcher::new(&train, 100, 1).unwrap();
    let mut seen = vec![0u8; train.len()];
    let mut count = 0;
    while let Some(b) = batches.next_batch() {
        assert_eq!(b.len(), 100);
        for (k, &i) in b.indices.iter().enumerate() {
            seen[i] += 1;
            assert_eq!(b.labels[k], train.labels[i]);
        }
        count += 1;
    }
    assert_eq!(count, 100);
    assert!(seen.iter().all(|&s| s == 1));
}

/// Devices, pipes and folders are refused at once: `/dev/zero` read as an IDX file (or as a
/// checkpoint) must not grow a buffer until memory runs out.
#[test]
fn devices_and_folders_are_refused_without_reading_them() {
    if !Path::new("/dev/zero").exists() {
        return;
    }
    let started = std::time::Instant::now();
    let (path, problem) = format_error(read_idx("/dev/zero"));
    assert_eq!(path, Path::new("/dev/zero"));
    assert!(problem.contains("not a regular file"), "{problem}");
    let dir = tempfile::tempdir().unwrap();
    let (_, problem) = format_error(read_idx(dir.path()));
    assert!(problem.contains("a folder"), "{problem}");
    #[cfg(feature = "checkpoint")]
    {
        let e = hdm_runtime::checkpoint::Checkpoint::open("/dev/zero").unwrap_err().to_string();
        assert!(e.starts_with("/dev/zero: not a regular file"), "{e}");
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
