//! Datasets: the IDX format, MNIST, and a mini-batch iterator that does not allocate.
//!
//! ```no_run
//! use hdm_runtime::data::{load_mnist, resolve_data_dir, Batcher};
//!
//! # fn main() -> hdm_runtime::Result<()> {
//! // `--data DIR` if given, else $HDM_DATA_DIR, else data/mnist.
//! let dir = resolve_data_dir(None);
//! let (train, test) = load_mnist::<f32>(&dir)?;
//! println!("{} training and {} test images of {}x{}", train.len(), test.len(), train.rows, train.cols);
//!
//! let mut batches = Batcher::new(&train, 100, 42)?;
//! for epoch in 0..2 {
//!     batches.start_epoch(epoch);
//!     while let Some(batch) = batches.next_batch() {
//!         // batch.x: [<=100, 784] pixels in [0, 1]; batch.labels: [<=100] classes
//!         assert_eq!(batch.x.nrows(), batch.labels.len());
//!     }
//! }
//! # Ok(())
//! # }
//! ```

mod batch;
#[cfg(feature = "download")]
mod download;
mod idx;

use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2};

pub use batch::{Batch, Batcher};
#[cfg(feature = "download")]
pub use download::{download_mnist, download_mnist_from, load_mnist_or_download, MNIST_MIRRORS, MNIST_SHA256};
pub use idx::{parse_idx, read_idx, Idx, IDX_U8};

use crate::{Error, Float, Result};

/// The environment variable naming the data folder when no `--data` is given.
pub const DATA_DIR_ENV: &str = "HDM_DATA_DIR";

/// The data folder when neither `--data` nor [`DATA_DIR_ENV`] is given.
pub const DEFAULT_DATA_DIR: &str = "data/mnist";

/// The four MNIST files, without the optional `.gz`: training images and labels, test images and
/// labels. Fashion-MNIST uses the same names.
pub const MNIST_FILES: [&str; 4] =
    ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];

/// A data set stored as MNIST's four IDX files ([`MNIST_FILES`]): its name, and where its
/// folder is looked for when no `--data` is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdxSet {
    /// The name error messages use.
    pub name: &'static str,
    /// The environment variable naming its folder.
    pub env: &'static str,
    /// The folder when neither `--data` nor the variable is given.
    pub default_dir: &'static str,
    /// Whether the `download` feature can fetch it.
    pub downloadable: bool,
}

/// MNIST: `$HDM_DATA_DIR`, else `data/mnist`.
pub const MNIST: IdxSet =
    IdxSet { name: "MNIST", env: DATA_DIR_ENV, default_dir: DEFAULT_DATA_DIR, downloadable: true };

/// Fashion-MNIST (the same files and names): `$HDM_FASHION_MNIST_DIR`, else `data/fashion-mnist`.
pub const FASHION_MNIST: IdxSet = IdxSet {
    name: "Fashion-MNIST",
    env: "HDM_FASHION_MNIST_DIR",
    default_dir: "data/fashion-mnist",
    downloadable: false,
};

impl IdxSet {
    /// The data folder: `cli` (the value of `--data`) if given, else the environment variable
    /// [`env`](Self::env) if set and not empty, else [`default_dir`](Self::default_dir).
    pub fn resolve_dir(&self, cli: Option<PathBuf>) -> PathBuf {
        if let Some(dir) = cli {
            return dir;
        }
        match std::env::var_os(self.env) {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => PathBuf::from(self.default_dir),
        }
    }

    /// Loads the set from `dir`: `(train, test)`.
    ///
    /// Reads the four standard files ([`MNIST_FILES`]), each raw or gzip-compressed, with any
    /// number of examples in them. When any is missing the error lists the files expected, the
    /// folder searched and how to give another; a damaged file is an [`Error::Format`] naming it.
    pub fn load<T: Float>(&self, dir: impl AsRef<Path>) -> Result<(Dataset<T>, Dataset<T>)> {
        let dir = dir.as_ref();
        let found = find_mnist_files(dir);
        let missing: Vec<&str> =
            MNIST_FILES.iter().zip(&found).filter(|(_, f)| f.is_none()).map(|(name, _)| *name).collect();
        if !missing.is_empty() {
            return Err(self.missing_files_error(dir, &missing));
        }
        let [Some(train_x), Some(train_y), Some(test_x), Some(test_y)] = found else { unreachable!("checked above") };
        let train = Dataset::from_idx_files(&train_x, &train_y)?;
        let test = Dataset::from_idx_files(&test_x, &test_y)?;
        if (train.rows, train.cols) != (test.rows, test.cols) {
            return Err(Error::Format {
                path: test_x,
                problem: format!(
                    "test images are {}x{} but the training images in {} are {}x{}",
                    test.rows,
                    test.cols,
                    train_x.display(),
                    train.rows,
                    train.cols
                ),
            });
        }
        Ok((train, test))
    }

    /// The error for absent files: an [`Error::Io`] of kind `NotFound` on the folder, whose
    /// message lists what was expected and how to give the folder.
    fn missing_files_error(&self, dir: &Path, missing: &[&str]) -> Error {
        let what = if dir.is_dir() {
            format!("missing {}", missing.iter().map(|n| format!("{n}[.gz]")).collect::<Vec<_>>().join(", "))
        } else {
            "no such folder".to_string()
        };
        let download =
            if self.downloadable && !cfg!(feature = "download") { " (or build with --features download)" } else { "" };
        let message = format!(
            "{what}. The {} folder holds {} (each raw or .gz): give it with --data DIR or {}{download}",
            self.name,
            MNIST_FILES.join(", "),
            self.env
        );
        Error::Io { path: dir.to_path_buf(), source: std::io::Error::new(std::io::ErrorKind::NotFound, message) }
    }
}

/// The MNIST data folder: [`MNIST`]`.resolve_dir(cli)`.
pub fn resolve_data_dir(cli: Option<PathBuf>) -> PathBuf {
    MNIST.resolve_dir(cli)
}

/// A labelled image dataset: one flattened image per row.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset<T = f32> {
    /// `[n, rows * cols]`, pixels scaled to `[0, 1]` (byte / 255), each image row-major.
    pub images: Array2<T>,
    /// `[n]` class labels.
    pub labels: Array1<usize>,
    /// Height of an image.
    pub rows: usize,
    /// Width of an image.
    pub cols: usize,
    /// The IDX file the labels were read from, if any: named by errors about a label.
    pub labels_file: Option<std::path::PathBuf>,
}

impl<T: Float> Dataset<T> {
    /// A dataset from its arrays; `images` must be `[labels.len(), rows * cols]`.
    pub fn new(images: Array2<T>, labels: Array1<usize>, rows: usize, cols: usize) -> Result<Self> {
        if images.dim() != (labels.len(), rows * cols) {
            return Err(Error::Shape {
                what: "dataset images".into(),
                expected: format!("[{}, {rows} * {cols}] (one row of {rows}x{cols} pixels per label)", labels.len()),
                got: format!("{:?}", images.shape()),
            });
        }
        Ok(Dataset { images: images.as_standard_layout().into_owned(), labels, rows, cols, labels_file: None })
    }

    /// Reads a pair of IDX files: images `[n, rows, cols]` and labels `[n]`, each raw or `.gz`.
    /// The counts must agree. Images are kept as stored (EMNIST stores them transposed, as its
    /// documentation says; that does not matter to a fully connected network).
    pub fn from_idx_files(images: impl AsRef<Path>, labels: impl AsRef<Path>) -> Result<Self> {
        let (images_path, labels_path) = (images.as_ref(), labels.as_ref());
        let images = read_idx(images_path)?;
        let labels = read_idx(labels_path)?;
        let &[n, rows, cols] = images.dims.as_slice() else {
            return Err(Error::Format {
                path: images_path.to_path_buf(),
                problem: format!(
                    "images must have 3 dimensions [count, rows, columns], the header gives {:?}",
                    images.dims
                ),
            });
        };
        let &[n_labels] = labels.dims.as_slice() else {
            return Err(Error::Format {
                path: labels_path.to_path_buf(),
                problem: format!("labels must have 1 dimension [count], the header gives {:?}", labels.dims),
            });
        };
        if n_labels != n {
            return Err(Error::Format {
                path: labels_path.to_path_buf(),
                problem: format!("holds {n_labels} labels but {} holds {n} images", images_path.display()),
            });
        }
        let scale = 1.0 / 255.0;
        let pixels: Vec<T> = images.data.iter().map(|&b| T::of(b as f64 * scale)).collect();
        let images = Array2::from_shape_vec((n, rows * cols), pixels).expect("length checked by read_idx");
        let labels = labels.data.iter().map(|&l| l as usize).collect();
        Ok(Dataset { images, labels, rows, cols, labels_file: Some(labels_path.to_path_buf()) })
    }

    /// Reads an IDX file of images `[n, rows, cols]` (raw or `.gz`) without labels (all 0): the
    /// data of a generative model.
    pub fn from_idx_images(images: impl AsRef<Path>) -> Result<Self> {
        let path = images.as_ref();
        let idx = read_idx(path)?;
        let &[n, rows, cols] = idx.dims.as_slice() else {
            return Err(Error::Format {
                path: path.to_path_buf(),
                problem: format!(
                    "images must have 3 dimensions [count, rows, columns], the header gives {:?}",
                    idx.dims
                ),
            });
        };
        let scale = 1.0 / 255.0;
        let pixels: Vec<T> = idx.data.iter().map(|&b| T::of(b as f64 * scale)).collect();
        let images = Array2::from_shape_vec((n, rows * cols), pixels).expect("length checked by read_idx");
        Ok(Dataset { images, labels: Array1::zeros(n), rows, cols, labels_file: None })
    }

    /// The dataset with every image transposed (rows and columns swapped): EMNIST stores its
    /// images transposed.
    pub fn transposed(&self) -> Self {
        let (rows, cols) = (self.rows, self.cols);
        let mut images = Array2::zeros((self.len(), rows * cols));
        for (src, mut dst) in self.images.rows().into_iter().zip(images.rows_mut()) {
            for r in 0..rows {
                for c in 0..cols {
                    dst[c * rows + r] = src[r * cols + c];
                }
            }
        }
        Dataset { images, labels: self.labels.clone(), rows: cols, cols: rows, labels_file: self.labels_file.clone() }
    }

    /// The number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The number of features of an example: `rows * cols`.
    pub fn features(&self) -> usize {
        self.images.ncols()
    }

    /// One more than the largest label (10 for MNIST); 0 for an empty dataset.
    pub fn num_classes(&self) -> usize {
        self.labels.iter().max().map_or(0, |&m| m + 1)
    }

    /// The first `n` examples (all of them if there are fewer), for quick runs.
    pub fn head(&self, n: usize) -> Self {
        self.range(0, n)
    }

    /// The examples `start..end` (clamped to the dataset), copied: a process's share of a
    /// held-out set in data-parallel training.
    pub fn range(&self, start: usize, end: usize) -> Self {
        let end = end.min(self.len());
        let start = start.min(end);
        Dataset {
            images: self.images.slice(ndarray::s![start..end, ..]).to_owned(),
            labels: self.labels.slice(ndarray::s![start..end]).to_owned(),
            rows: self.rows,
            cols: self.cols,
            labels_file: self.labels_file.clone(),
        }
    }

    /// Checks that every label is below `classes` (as a batch's labels are checked,
    /// [`crate::network::check_labels`]): an error names the label, its row and the file it
    /// came from, if any.
    pub fn check_labels(&self, classes: usize) -> Result<()> {
        match (crate::network::check_labels(&self.labels.view(), self.len(), classes), &self.labels_file) {
            (Err(Error::Target(problem)), Some(path)) => Err(Error::Format { path: path.clone(), problem }),
            (checked, _) => checked,
        }
    }
}

/// Where each of the [`MNIST_FILES`] is in `dir`, raw (preferred) or `.gz`; `None` if absent.
pub fn find_mnist_files(dir: impl AsRef<Path>) -> [Option<PathBuf>; 4] {
    let dir = dir.as_ref();
    MNIST_FILES.map(|name| idx::candidates(dir, name).into_iter().find(|p| p.is_file()))
}

/// Loads MNIST from `dir`: `(train, test)` ([`MNIST`]`.load(dir)`; [`FASHION_MNIST`] for
/// Fashion-MNIST).
pub fn load_mnist<T: Float>(dir: impl AsRef<Path>) -> Result<(Dataset<T>, Dataset<T>)> {
    MNIST.load(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_dir_prefers_the_command_line() {
        // The environment is process-wide: only the explicit value is tested here, the
        // environment variable in the integration tests.
        assert_eq!(resolve_data_dir(Some("x/y".into())), PathBuf::from("x/y"));
    }

    #[test]
    fn dataset_checks_its_shapes() {
        let ok = Dataset::<f32>::new(Array2::zeros((3, 4)), Array1::from(vec![0, 1, 2]), 2, 2).unwrap();
        assert_eq!((ok.len(), ok.features(), ok.num_classes()), (3, 4, 3));
        assert_eq!(ok.head(2).len(), 2);
        assert_eq!(ok.head(10).len(), 3);
        assert!(matches!(
            Dataset::<f32>::new(Array2::zeros((3, 5)), Array1::from(vec![0, 1, 2]), 2, 2),
            Err(Error::Shape { .. })
        ));
    }

    #[test]
    fn images_without_labels_and_transposed() {
        // Two 2x3 images: bytes 0..6 and 6..12.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("images-idx3-ubyte");
        let mut file = vec![0, 0, 0x08, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3];
        file.extend(0..12u8);
        std::fs::write(&path, &file).unwrap();
        let d = Dataset::<f64>::from_idx_images(&path).unwrap();
        assert_eq!((d.len(), d.rows, d.cols), (2, 2, 3));
        assert_eq!(d.labels.to_vec(), [0, 0]);
        assert_eq!(d.images[[1, 4]], 10.0 / 255.0);
        // [[0 1 2] [3 4 5]] transposed is [[0 3] [1 4] [2 5]]; twice is the original.
        let t = d.transposed();
        assert_eq!((t.rows, t.cols), (3, 2));
        let first: Vec<f64> = t.images.row(0).iter().map(|v| v * 255.0).collect();
        assert_eq!(first, [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        assert_eq!(t.transposed(), d);
        // A file of labels (one dimension) is not a file of images, and the error says which.
        std::fs::write(&path, [0, 0, 0x08, 1, 0, 0, 0, 2, 7, 7]).unwrap();
        match Dataset::<f64>::from_idx_images(&path) {
            Err(Error::Format { path: p, problem }) => {
                assert_eq!(p, path);
                assert!(problem.contains("3 dimensions"), "{problem}");
            }
            other => panic!("expected a format error, got {other:?}"),
        }
    }
}
