//! Checkpoints in the [safetensors](https://huggingface.co/docs/safetensors) format, which
//! PyTorch, JAX, burn and candle read.
//!
//! A checkpoint holds a model's parameters under PyTorch's names and layout (`fc1.weight` as
//! `[out, in]`, `fc1.bias` as `[out]`, row-major, little-endian `F32` or `F64`), so that
//! `torch.nn.Linear(in, out).load_state_dict(...)` takes them as they are; beside them any extra
//! named tensors (an optimizer's state, such as `optim.fc1.weight.exp_avg`) and string metadata
//! (step, epoch, optimizer and hyperparameters, seed) in the header's `__metadata__`.
//!
//! [`save`] writes atomically: a temporary file in the same folder, flushed to disk, renamed over
//! the target, and the folder flushed, so a crash leaves the old checkpoint or the new one, never
//! a broken file. [`Checkpoint::load`] checks everything before changing anything: a checkpoint of
//! another network is an error listing every tensor that is missing, unexpected, or of another
//! shape or dtype.
//!
//! ```
//! use hdm_runtime::checkpoint::{self, Checkpoint, Metadata};
//! use hdm_runtime::{Linear, Parameters, Rng};
//!
//! # fn main() -> hdm_runtime::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("model.safetensors");
//! let layer: Linear<f32, 3, 2> = Linear::init(&mut Rng::new(0));
//! let momentum = vec![0.5f32; 6];
//! let mut meta = Metadata::new();
//! meta.insert("step".into(), "100".into());
//! checkpoint::save(&path, &layer, [("optim.weight.momentum_buffer", vec![2, 3], &momentum[..])], &meta)?;
//!
//! let mut restored: Linear<f32, 3, 2> = Linear::zeros();
//! let mut buffer = vec![0.0f32; 6];
//! let ck = Checkpoint::open(&path)?;
//! ck.load(&mut restored, [("optim.weight.momentum_buffer", vec![2, 3], &mut buffer[..])])?;
//! assert_eq!(restored, layer);
//! assert_eq!(ck.parse::<u64>("step")?, 100);
//! # Ok(())
//! # }
//! ```
//!
//! Checked once with Python (safetensors 0.8.0 and numpy 2.4.6 from PyPI; torch itself was not
//! installed) on files written by [`save`] from a `Linear<f32, 3, 2>` and a `Linear<f64, 3, 2>`
//! with one extra tensor: `safetensors.numpy.load_file` gave `weight` float32 (2, 3), `bias`
//! float32 (2,) and `optim.bias.exp_avg` with the values Rust printed (and float64 likewise), and
//! `safe_open(...).metadata()` gave `{'format': 'pt', 'hdm.extra_tensors': 'optim.bias.exp_avg',
//! 'step': '42'}`. Those are the names, shapes and dtypes of `nn.Linear(3, 2).state_dict()`. The
//! header is the JSON object of the safetensors specification, `{"__metadata__": {...},
//! "fc1.weight": {"dtype": "F32", "shape": [500, 784], "data_offsets": [begin, end]}, ...}`, as
//! the tests check byte by byte.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors, View};

use crate::{Error, Float, Param, ParamMut, Parameters, Result};

/// String metadata stored in a checkpoint's header (`__metadata__`).
pub type Metadata = BTreeMap<String, String>;

/// The metadata key of the checksum [`save`] writes and [`Checkpoint::open`] verifies:
/// `"fnv64w:<16 hex digits>"`, FNV-1a over 64-bit little-endian words of every tensor's name,
/// dtype, shape and bytes, in name order. Files without it (written by PyTorch) load unchecked.
pub const CHECKSUM_KEY: &str = "hdm.checksum";

/// FNV-1a on 64-bit words: each step `h = (h ^ word) * prime` is a bijection of `h`, so a single
/// changed word always changes the result.
struct Checksum(u64);

impl Checksum {
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    fn new() -> Self {
        Checksum(0xcbf2_9ce4_8422_2325)
    }

    fn word(&mut self, w: u64) {
        self.0 = (self.0 ^ w).wrapping_mul(Self::PRIME);
    }

    fn bytes(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.word(u64::from_le_bytes(w.try_into().expect("8 bytes")));
        }
        let mut tail = [0u8; 8];
        tail[..words.remainder().len()].copy_from_slice(words.remainder());
        self.word(u64::from_le_bytes(tail));
        self.word(bytes.len() as u64);
    }

    /// The checksum of tensors given in name order.
    fn of<'a>(tensors: impl Iterator<Item = (&'a str, Dtype, &'a [usize], &'a [u8])>) -> String {
        let mut h = Checksum::new();
        for (name, dtype, shape, data) in tensors {
            h.bytes(name.as_bytes());
            h.bytes(dtype.to_string().as_bytes());
            h.word(shape.len() as u64);
            shape.iter().for_each(|&d| h.word(d as u64));
            h.bytes(data);
        }
        format!("fnv64w:{:016x}", h.0)
    }
}

/// The metadata key under which [`save`] lists the extra tensors (comma-separated), so that
/// [`Checkpoint::load_params`] can tell them from parameters of another network.
pub const EXTRA_TENSORS_KEY: &str = "hdm.extra_tensors";

impl<'a, T> From<(String, Vec<usize>, &'a [T])> for Param<'a, T> {
    fn from((name, shape, data): (String, Vec<usize>, &'a [T])) -> Self {
        Param { name, shape, data }
    }
}

impl<'a, T> From<(&str, Vec<usize>, &'a [T])> for Param<'a, T> {
    fn from((name, shape, data): (&str, Vec<usize>, &'a [T])) -> Self {
        Param { name: name.to_string(), shape, data }
    }
}

impl<'a, T> From<(String, Vec<usize>, &'a mut [T])> for ParamMut<'a, T> {
    fn from((name, shape, data): (String, Vec<usize>, &'a mut [T])) -> Self {
        ParamMut { name, shape, data }
    }
}

impl<'a, T> From<(&str, Vec<usize>, &'a mut [T])> for ParamMut<'a, T> {
    fn from((name, shape, data): (&str, Vec<usize>, &'a mut [T])) -> Self {
        ParamMut { name: name.to_string(), shape, data }
    }
}

fn dtype_of<T: Float>() -> Result<Dtype> {
    match T::DTYPE {
        "F32" => Ok(Dtype::F32),
        "F64" => Ok(Dtype::F64),
        other => Err(Error::Other(format!("checkpoints support F32 and F64 elements, not {other}"))),
    }
}

/// A tensor as safetensors serialises it: its little-endian bytes.
struct Written {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl Written {
    /// Floating-point values, as `dtype` (`to_f64` is exact for f32, and the cast back is the
    /// identity on its values).
    fn float<T: Float>(dtype: Dtype, shape: &[usize], data: &[T]) -> Self {
        let mut bytes = Vec::with_capacity(data.len() * if dtype == Dtype::F32 { 4 } else { 8 });
        if dtype == Dtype::F32 {
            data.iter().for_each(|x| bytes.extend_from_slice(&(Float::to_f64(*x) as f32).to_le_bytes()));
        } else {
            data.iter().for_each(|x| bytes.extend_from_slice(&Float::to_f64(*x).to_le_bytes()));
        }
        Written { dtype, shape: shape.to_vec(), bytes }
    }

    /// An integer counter (`num_batches_tracked`) as PyTorch saves it: an `I64` scalar, shape `[]`.
    fn counter(value: i64) -> Self {
        Written { dtype: Dtype::I64, shape: Vec::new(), bytes: value.to_le_bytes().to_vec() }
    }
}

impl View for &Written {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// Copies little-endian `bytes` of a floating-point `dtype` (F16, BF16, F32 or F64) into `out`,
/// converting each value exactly to f64 and then rounding it to `T` (to nearest).
fn decode<T: Float>(dtype: Dtype, bytes: &[u8], out: &mut [T]) {
    fn each<T: Float, const N: usize>(bytes: &[u8], out: &mut [T], f: impl Fn([u8; N]) -> f64) {
        for (x, b) in out.iter_mut().zip(bytes.chunks_exact(N)) {
            *x = T::of(f(b.try_into().expect("N bytes")));
        }
    }
    match dtype {
        Dtype::F16 => each(bytes, out, |b| f16_to_f64(u16::from_le_bytes(b))),
        Dtype::BF16 => each(bytes, out, |b| f32::from_bits(u32::from(u16::from_le_bytes(b)) << 16) as f64),
        Dtype::F32 => each(bytes, out, |b| f32::from_le_bytes(b) as f64),
        Dtype::F64 => each(bytes, out, f64::from_le_bytes),
        other => unreachable!("checked before decoding: {other} is not a floating-point dtype"),
    }
}

/// Whether values of `dtype` convert to floating point: what [`Checkpoint::load_state_dict`]
/// takes for a parameter.
fn is_float(dtype: Dtype) -> bool {
    matches!(dtype, Dtype::F16 | Dtype::BF16 | Dtype::F32 | Dtype::F64)
}

/// An IEEE 754 half-precision number, exactly (every f16 value is an f64 value).
fn f16_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = i32::from((h >> 10) & 0x1f);
    let fraction = f64::from(h & 0x3ff);
    match exponent {
        0 => sign * fraction * 2f64.powi(-24),
        0x1f if fraction == 0.0 => sign * f64::INFINITY,
        0x1f => f64::NAN,
        e => sign * (1.0 + fraction / 1024.0) * 2f64.powi(e - 15),
    }
}

/// Saves `model`'s parameters and buffers (a batch normalisation's running statistics and
/// `num_batches_tracked`: PyTorch's whole `state_dict`), the `extra` tensors and `metadata` to
/// `path`, atomically.
///
/// `extra` takes [`Param`]s or `(name, shape, data)` tuples. Every tensor must have as many
/// elements as its shape says and a name of its own. The metadata gets `"format": "pt"` (what
/// PyTorch tools expect) unless it has a `format`, and [`EXTRA_TENSORS_KEY`] listing the extra
/// tensors (replacing any value given).
pub fn save<'a, T, M, I>(path: impl AsRef<Path>, model: &'a M, extra: I, metadata: &Metadata) -> Result<()>
where
    T: Float,
    M: Parameters<T> + ?Sized,
    I: IntoIterator,
    I::Item: Into<Param<'a, T>>,
{
    let path = path.as_ref();
    let extra: Vec<Param<'a, T>> = extra.into_iter().map(Into::into).collect();
    Encoded::new(path, model.state(), model.counters(), extra, metadata)?.write(path)
}

/// A checkpoint file's content, checked and encoded, before it is written: the tensors in name
/// order, the header, and the checksum recorded under [`CHECKSUM_KEY`].
struct Encoded {
    tensors: Vec<(String, Written)>,
    header: std::collections::HashMap<String, String>,
    checksum: String,
}

impl Encoded {
    /// Checks and encodes `params` and `extra` (floating-point) and `counters` (`I64` scalars)
    /// with `metadata`; errors name `path`, where the file is meant to go.
    fn new<T: Float>(
        path: &Path,
        params: Vec<Param<'_, T>>,
        counters: Vec<(String, u64)>,
        extra: Vec<Param<'_, T>>,
        metadata: &Metadata,
    ) -> Result<Self> {
        let dtype = dtype_of::<T>()?;

        let mut names: BTreeSet<&str> = BTreeSet::new();
        for (name, _) in &counters {
            if !names.insert(name) {
                return Err(Error::Other(format!("{}: the tensor name {name:?} is used twice", path.display())));
            }
        }
        for p in params.iter().chain(&extra) {
            let expected: usize = p.shape.iter().product();
            if p.data.len() != expected {
                return Err(Error::Shape {
                    what: format!("checkpoint tensor {}", p.name),
                    expected: format!("{expected} elements (shape {:?})", p.shape),
                    got: format!("{} elements", p.data.len()),
                });
            }
            if !names.insert(p.name.as_str()) {
                return Err(Error::Other(format!(
                    "{}: the tensor name {:?} is used twice (a parameter and an extra tensor?)",
                    path.display(),
                    p.name
                )));
            }
        }
        if let Some(p) = extra.iter().find(|p| p.name.contains(',')) {
            return Err(Error::Other(format!("{}: extra tensor name {:?} contains a comma", path.display(), p.name)));
        }

        let mut header: std::collections::HashMap<String, String> =
            metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        header.entry("format".into()).or_insert_with(|| "pt".into());
        header.remove(EXTRA_TENSORS_KEY);
        if !extra.is_empty() {
            header
                .insert(EXTRA_TENSORS_KEY.into(), extra.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(","));
        }
        let counter_values: Vec<(&str, i64)> = counters
            .iter()
            .map(|(n, v)| {
                i64::try_from(*v)
                    .map(|v| (n.as_str(), v))
                    .map_err(|_| Error::Other(format!("{}: counter {n} = {v} does not fit in an I64", path.display())))
            })
            .collect::<Result<_>>()?;
        // Every tensor's bytes once: for the checksum, then for the file.
        let mut tensors: Vec<(String, Written)> = params
            .iter()
            .chain(&extra)
            .map(|p| (p.name.clone(), Written::float(dtype, &p.shape, p.data)))
            .chain(counter_values.iter().map(|&(n, v)| (n.to_string(), Written::counter(v))))
            .collect();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        let checksum =
            Checksum::of(tensors.iter().map(|(n, w)| (n.as_str(), w.dtype, w.shape.as_slice(), w.bytes.as_slice())));
        header.insert(CHECKSUM_KEY.into(), checksum.clone());
        Ok(Encoded { tensors, header, checksum })
    }

    /// Writes the file to `path`, atomically.
    fn write(self, path: &Path) -> Result<()> {
        let tensors = self.tensors.iter().map(|(n, w)| (n.as_str(), w));
        let bytes = safetensors::serialize(tensors, Some(self.header))
            .map_err(|e| Error::Other(format!("{}: cannot serialise the checkpoint: {e}", path.display())))?;
        crate::atomic::write_atomic(path, &bytes)
    }
}

/// A model without tensors: [`Checkpoint::load`] into it fills only the extra tensors (an
/// optimizer file's state).
pub struct NoParameters;

impl<T> Parameters<T> for NoParameters {
    fn params_with_prefix(&self, _: &str) -> Vec<Param<'_, T>> {
        Vec::new()
    }
    fn params_mut_with_prefix(&mut self, _: &str) -> Vec<ParamMut<'_, T>> {
        Vec::new()
    }
}

/// The metadata key of an optimizer file ([`save_training_state`]) that holds the checksum of
/// the model file it was saved with.
pub const MODEL_CHECKSUM_KEY: &str = "hdm.model_checksum";

/// The optimizer file saved beside a model file by [`save_training_state`]: `adam.safetensors`
/// gives `adam.optim.safetensors` (and a name without the extension gets it appended).
pub fn optimizer_path(model_path: impl AsRef<Path>) -> PathBuf {
    let path = model_path.as_ref();
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let stem = name.strip_suffix(".safetensors").unwrap_or(&name);
    path.with_file_name(format!("{stem}.optim.safetensors"))
}

/// The previous optimizer file, kept while a save is under way (see [`save_training_state`]).
fn previous_path(optimizer_path: &Path) -> PathBuf {
    let mut name = optimizer_path.file_name().unwrap_or_default().to_os_string();
    name.push(".prev");
    optimizer_path.with_file_name(name)
}

/// Saves a training run's state as PyTorch users keep it: the model's `state_dict` alone in
/// `path` (which `torch.nn.Module.load_state_dict(strict=True)` takes as it is), and the
/// optimizer's state (`optimizer` tensors, named `optim.<parameter>.<buffer>`) with the
/// training metadata in [`optimizer_path`]`(path)`.
///
/// `model_metadata` goes into the model file, `metadata` into the optimizer file, which also
/// records the model file's checksum ([`MODEL_CHECKSUM_KEY`]), so that
/// [`open_training_state`] never pairs a model with the optimizer state of another save.
///
/// Each file is written atomically, and the pair is kept consistent across a crash: the previous
/// optimizer file is moved to `<optimizer file>.prev`, the new optimizer file written, then the
/// model file, then the `.prev` removed. Whenever the process dies, one of the two optimizer files
/// matches the model file on disk.
pub fn save_training_state<'a, T, M>(
    path: impl AsRef<Path>,
    model: &M,
    model_metadata: &Metadata,
    optimizer: Vec<Param<'a, T>>,
    metadata: &Metadata,
) -> Result<()>
where
    T: Float,
    M: Parameters<T> + ?Sized,
{
    let path = path.as_ref();
    let opt_path = optimizer_path(path);
    // Both files encoded (and so checked) before anything on disk changes; the optimizer file
    // records the model file's checksum.
    let model_file = Encoded::new(path, model.state(), model.counters(), Vec::new(), model_metadata)?;
    let mut meta = metadata.clone();
    meta.insert(MODEL_CHECKSUM_KEY.into(), model_file.checksum.clone());
    let optimizer_file = Encoded::new(&opt_path, Vec::new(), Vec::new(), optimizer, &meta)?;
    let prev = previous_path(&opt_path);
    match std::fs::rename(&opt_path, &prev) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(Error::Io { path: opt_path, source }),
    }
    optimizer_file.write(&opt_path)?;
    model_file.write(path)?;
    match std::fs::remove_file(&prev) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Io { path: prev, source }),
    }
}

/// Opens what [`save_training_state`] wrote: the model file at `path` and the optimizer file
/// saved with it (the current one, or the `.prev` one when a save was interrupted). A model
/// file that holds its optimizer's state itself (`optim.*` tensors, as hdm wrote before the two
/// files were split) comes with `None`.
///
/// An error names the files when no optimizer file belongs to this model file.
pub fn open_training_state(path: impl AsRef<Path>) -> Result<(Checkpoint, Option<Checkpoint>)> {
    let model = Checkpoint::open(path.as_ref())?;
    if model.names().any(|n| n.starts_with("optim.")) {
        return Ok((model, None));
    }
    let opt_path = optimizer_path(path.as_ref());
    let wanted = model.get(CHECKSUM_KEY).map(str::to_string);
    let mut seen = Vec::new();
    for candidate in [opt_path.clone(), previous_path(&opt_path)] {
        if !candidate.exists() {
            continue;
        }
        let opt = Checkpoint::open(&candidate)?;
        if wanted.is_some() && opt.get(MODEL_CHECKSUM_KEY) == wanted.as_deref() {
            return Ok((model, Some(opt)));
        }
        seen.push(candidate.display().to_string());
    }
    let problem = if seen.is_empty() {
        format!(
            "no optimizer state beside it ({} is missing): the model file alone cannot resume training",
            opt_path.display()
        )
    } else {
        format!(
            "the optimizer state in {} was saved with another version of this model file (an \
             interrupted save, or files copied from different runs)",
            seen.join(" and ")
        )
    };
    Err(Error::Format { path: path.as_ref().to_path_buf(), problem })
}

/// Saves only `model`'s parameters (and `metadata`) to `path`, atomically: [`save`] without
/// extra tensors.
pub fn save_params<T: Float, M: Parameters<T> + ?Sized>(
    path: impl AsRef<Path>,
    model: &M,
    metadata: &Metadata,
) -> Result<()> {
    save(path, model, std::iter::empty::<Param<'_, T>>(), metadata)
}

/// Loads `model`'s parameters and the `extra` tensors from `path` and returns the metadata:
/// [`Checkpoint::open`] then [`Checkpoint::load`].
pub fn load<'a, T, M, I>(path: impl AsRef<Path>, model: &mut M, extra: I) -> Result<Metadata>
where
    T: Float,
    M: Parameters<T> + ?Sized,
    I: IntoIterator,
    I::Item: Into<ParamMut<'a, T>>,
{
    let ck = Checkpoint::open(path)?;
    ck.load(model, extra)?;
    Ok(ck.metadata)
}

/// Loads a PyTorch state dict saved as safetensors into `model`, strictly, converting F16,
/// BF16, F32 and F64 to the network's element type ([`Checkpoint::load_state_dict`]), and
/// returns the file's metadata. PyTorch writes such a file with
///
/// ```python
/// from safetensors.torch import save_file
/// save_file(model.state_dict(), "model.safetensors")  # after torch.save users' torch.load
/// ```
///
/// and hdm reads it in one line: `hdm::checkpoint::load_state_dict("model.safetensors", &mut model)?`.
pub fn load_state_dict<T: Float, M: Parameters<T> + ?Sized>(path: impl AsRef<Path>, model: &mut M) -> Result<Metadata> {
    let ck = Checkpoint::open(path)?;
    ck.load_state_dict(model)?;
    Ok(ck.metadata)
}

#[derive(Clone, Debug)]
struct Entry {
    dtype: Dtype,
    shape: Vec<usize>,
    /// Where the tensor's bytes are in the file.
    range: std::ops::Range<usize>,
}

/// A checkpoint read into memory and checked against the safetensors format.
pub struct Checkpoint {
    path: PathBuf,
    bytes: Vec<u8>,
    tensors: BTreeMap<String, Entry>,
    metadata: Metadata,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names, shapes and dtypes; not the bytes.
        let tensors: BTreeMap<&str, (String, &[usize])> =
            self.tensors.iter().map(|(n, e)| (n.as_str(), (e.dtype.to_string(), e.shape.as_slice()))).collect();
        f.debug_struct("Checkpoint")
            .field("path", &self.path)
            .field("tensors", &tensors)
            .field("metadata", &self.metadata)
            .finish()
    }
}

impl Checkpoint {
    /// Reads and checks the file: a missing file is [`Error::Io`]; a truncated or corrupt one
    /// [`Error::Format`] naming it.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let bytes = crate::files::read_regular_file(&path)?;
        let (header_len, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| Error::Format {
            path: path.clone(),
            problem: format!("not a valid safetensors checkpoint (truncated or corrupt?): {e}"),
        })?;
        let start = 8 + header_len;
        let tensors = meta
            .tensors()
            .into_iter()
            .map(|(name, info)| {
                let (b, e) = info.data_offsets;
                (name, Entry { dtype: info.dtype, shape: info.shape.clone(), range: start + b..start + e })
            })
            .collect();
        let metadata: Metadata = meta.metadata().clone().unwrap_or_default().into_iter().collect();
        let ck = Checkpoint { path, bytes, tensors, metadata };
        ck.verify_checksum()?;
        Ok(ck)
    }

    /// Compares the data with the checksum [`save`] recorded, if there is one.
    fn verify_checksum(&self) -> Result<()> {
        let Some(recorded) = self.get(CHECKSUM_KEY) else { return Ok(()) };
        let actual = Checksum::of(
            self.tensors.iter().map(|(n, e)| (n.as_str(), e.dtype, e.shape.as_slice(), &self.bytes[e.range.clone()])),
        );
        if actual != recorded {
            return Err(Error::Format {
                path: self.path.clone(),
                problem: format!(
                    "the tensor data do not match the checksum written with them (recorded {recorded}, \
                     computed {actual}): the file was changed or damaged after it was saved"
                ),
            });
        }
        Ok(())
    }

    /// Checks an optimizer's state (the tensors named `optim.*`) for values no run can produce:
    /// non-finite values anywhere, and negative second moments (`exp_avg_sq`, `max_exp_avg_sq`,
    /// AdaGrad's `sum`, RMSprop's `square_avg`).
    pub fn check_optimizer_state(&self) -> Result<()> {
        for (name, e) in self.tensors.iter().filter(|(n, _)| n.starts_with("optim.")) {
            let values: Vec<f64> = match e.dtype {
                Dtype::F32 => self.tensor::<f32>(name)?.into_iter().map(f64::from).collect(),
                Dtype::F64 => self.tensor::<f64>(name)?,
                _ => continue,
            };
            let second_moment = ["exp_avg_sq", "max_exp_avg_sq", "sum", "square_avg"]
                .iter()
                .any(|b| name.rsplit('.').next() == Some(b));
            let bad = values.iter().position(|v| !v.is_finite() || (second_moment && *v < 0.0));
            if let Some(i) = bad {
                let rule = if second_moment { "a finite value >= 0 (a sum of squares)" } else { "finite" };
                return Err(Error::Format {
                    path: self.path.clone(),
                    problem: format!(
                        "optimizer state {name} holds {} at element {i}, where it must be {rule}",
                        values[i]
                    ),
                });
            }
        }
        Ok(())
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The metadata of the header (`__metadata__`).
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// One metadata value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }

    /// One metadata value, parsed (`ck.parse::<u64>("step")`); an error names the key and file.
    pub fn parse<V: std::str::FromStr>(&self, key: &str) -> Result<V>
    where
        V::Err: std::fmt::Display,
    {
        let value = self.get(key).ok_or_else(|| Error::Format {
            path: self.path.clone(),
            problem: format!("the metadata has no {key:?}"),
        })?;
        value.parse().map_err(|e| Error::Format {
            path: self.path.clone(),
            problem: format!("metadata {key:?} = {value:?} cannot be read: {e}"),
        })
    }

    /// The names of the tensors, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// A tensor's shape, if it is there.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.tensors.get(name).map(|e| e.shape.as_slice())
    }

    /// A tensor's dtype as safetensors writes it (`"F32"`), if it is there.
    pub fn dtype(&self, name: &str) -> Option<String> {
        self.tensors.get(name).map(|e| e.dtype.to_string())
    }

    /// One tensor's elements (row-major), which must be of type `T`.
    pub fn tensor<T: Float>(&self, name: &str) -> Result<Vec<T>> {
        let entry = self.tensors.get(name).ok_or_else(|| Error::Format {
            path: self.path.clone(),
            problem: format!("no tensor {name:?} in the checkpoint"),
        })?;
        let dtype = dtype_of::<T>()?;
        if entry.dtype != dtype {
            return Err(Error::Format {
                path: self.path.clone(),
                problem: format!("tensor {name:?} is {}, not {}", entry.dtype, T::DTYPE),
            });
        }
        let mut out = vec![T::zero(); entry.shape.iter().product()];
        decode(dtype, &self.bytes[entry.range.clone()], &mut out);
        Ok(out)
    }

    /// Copies into `model` its parameters and into `extra` (the buffers the caller wants filled,
    /// as [`ParamMut`]s or `(name, shape, data)` tuples) theirs.
    ///
    /// Everything is checked before anything is changed: each requested tensor must be in the
    /// file with the same shape and dtype, and the file must hold nothing else. Otherwise the
    /// error lists every difference.
    pub fn load<'a, T, M, I>(&self, model: &mut M, extra: I) -> Result<()>
    where
        T: Float,
        M: Parameters<T> + ?Sized,
        I: IntoIterator,
        I::Item: Into<ParamMut<'a, T>>,
    {
        let counters: Vec<String> = model.counters().into_iter().map(|(n, _)| n).collect();
        let mut targets = model.state_mut();
        targets.extend(extra.into_iter().map(|p| {
            // Rebuilt so that the borrow can shorten to the model's.
            let ParamMut { name, shape, data } = p.into();
            ParamMut { name, shape, data }
        }));
        self.fill(targets, &counters, |_| false, false)?;
        self.fill_counters(model);
        Ok(())
    }

    /// Copies into `model` its parameters and buffers, ignoring the extra tensors that [`save`]
    /// listed (an optimizer's state), as for inference. Every other difference is an error, as
    /// for [`load`](Checkpoint::load).
    pub fn load_params<T: Float, M: Parameters<T> + ?Sized>(&self, model: &mut M) -> Result<()> {
        let extra: BTreeSet<&str> = self.get(EXTRA_TENSORS_KEY).map(|s| s.split(',').collect()).unwrap_or_default();
        let counters: Vec<String> = model.counters().into_iter().map(|(n, _)| n).collect();
        self.fill(model.state_mut(), &counters, |name| extra.contains(name), false)?;
        self.fill_counters(model);
        Ok(())
    }

    /// Copies into `model` a state dict written by PyTorch (or any tool) in safetensors, as
    /// `torch.nn.Module.load_state_dict(strict=True)` would: every parameter and buffer of
    /// `model` must be in the file with the same shape, and the file must hold nothing else.
    /// Floating-point tensors of any width (F16, BF16, F32, F64) are converted to `T` (exactly
    /// where `T` holds the value, else rounded to nearest). Otherwise nothing changes and the
    /// error lists every name, shape and dtype that differs.
    pub fn load_state_dict<T: Float, M: Parameters<T> + ?Sized>(&self, model: &mut M) -> Result<()> {
        let counters: Vec<String> = model.counters().into_iter().map(|(n, _)| n).collect();
        self.fill(model.state_mut(), &counters, |_| false, true)?;
        self.fill_counters(model);
        Ok(())
    }

    /// Sets `model`'s counters from the file, once [`fill`](Self::fill) checked them.
    fn fill_counters<T: Float, M: Parameters<T> + ?Sized>(&self, model: &mut M) {
        for (name, value) in model.counters_mut() {
            let bytes = &self.bytes[self.tensors[&name].range.clone()];
            *value = i64::from_le_bytes(bytes.try_into().expect("checked: 8 bytes")).max(0) as u64;
        }
    }

    /// Checks the file against `targets` (floating-point tensors) and `counters` (I64 scalars),
    /// then copies the targets: nothing changes unless everything fits. Floating-point tensors
    /// of another width are converted when `convert`, refused otherwise.
    fn fill<T: Float>(
        &self,
        targets: Vec<ParamMut<'_, T>>,
        counters: &[String],
        ignorable: impl Fn(&str) -> bool,
        convert: bool,
    ) -> Result<()> {
        let dtype = dtype_of::<T>()?;
        let mut problems = Vec::new();
        let mut requested = BTreeSet::new();
        for name in counters {
            requested.insert(name.as_str());
            match self.tensors.get(name) {
                None => problems.push(format!("missing: {name} [] I64")),
                Some(e) if e.dtype != Dtype::I64 || !e.shape.is_empty() => problems.push(format!(
                    "different kind: {name} is {:?} {} in the file, a counter ([] I64) here",
                    e.shape, e.dtype
                )),
                Some(_) => {}
            }
        }
        for t in &targets {
            if !requested.insert(t.name.as_str()) {
                problems.push(format!("requested twice: {}", t.name));
                continue;
            }
            let expected: usize = t.shape.iter().product();
            if t.data.len() != expected {
                problems.push(format!(
                    "buffer of {} has {} elements, its shape {:?} needs {expected}",
                    t.name,
                    t.data.len(),
                    t.shape
                ));
            }
            match self.tensors.get(&t.name) {
                None => problems.push(format!("missing: {} {:?} {}", t.name, t.shape, T::DTYPE)),
                Some(e) => {
                    if e.shape != t.shape {
                        problems.push(format!(
                            "different shape: {} is {:?} in the file, {:?} here",
                            t.name, e.shape, t.shape
                        ));
                    }
                    if convert && !is_float(e.dtype) {
                        problems.push(format!(
                            "different dtype: {} is {} in the file, not a floating-point type ({} here)",
                            t.name, e.dtype, dtype
                        ));
                    } else if !convert && e.dtype != dtype {
                        problems
                            .push(format!("different dtype: {} is {} in the file, {} here", t.name, e.dtype, dtype));
                    }
                }
            }
        }
        for (name, e) in &self.tensors {
            if !requested.contains(name.as_str()) && !ignorable(name) {
                problems.push(format!("unexpected: {name} {:?} {}", e.shape, e.dtype));
            }
        }
        if !problems.is_empty() {
            return Err(Error::Format {
                path: self.path.clone(),
                problem: format!(
                    "checkpoint does not fit ({} difference{}):\n  {}",
                    problems.len(),
                    if problems.len() == 1 { "" } else { "s" },
                    problems.join("\n  ")
                ),
            });
        }
        for t in targets {
            let entry = &self.tensors[&t.name];
            decode(entry.dtype, &self.bytes[entry.range.clone()], t.data);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Linear, NoBias, Rng};

    /// A two-layer model as `#[network]` would implement `Parameters` for it.
    struct Mlp<T: Float, const H: usize> {
        fc1: Linear<T, 4, H>,
        fc2: Linear<T, H, 3, NoBias>,
    }

    impl<T: Float, const H: usize> Parameters<T> for Mlp<T, H> {
        fn params_with_prefix(&self, prefix: &str) -> Vec<Param<'_, T>> {
            let mut v = self.fc1.params_with_prefix(&format!("{prefix}fc1."));
            v.extend(self.fc2.params_with_prefix(&format!("{prefix}fc2.")));
            v
        }
        fn params_mut_with_prefix(&mut self, prefix: &str) -> Vec<ParamMut<'_, T>> {
            let mut v = self.fc1.params_mut_with_prefix(&format!("{prefix}fc1."));
            v.extend(self.fc2.params_mut_with_prefix(&format!("{prefix}fc2.")));
            v
        }
    }

    fn mlp<T: Float, const H: usize>(seed: u64) -> Mlp<T, H> {
        let mut rng = Rng::new(seed);
        Mlp { fc1: Linear::init(&mut rng), fc2: Linear::init(&mut rng) }
    }

    fn bits<T: Float>(m: &impl Parameters<T>) -> Vec<u64> {
        m.params().iter().flat_map(|p| p.data.iter().map(|x| Float::to_f64(*x).to_bits())).collect()
    }

    fn round_trip<T: Float>() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ck.safetensors");
        let mut model = mlp::<T, 5>(1);
        // Values that a lossy or reordered copy would change.
        model.fc1.weight_slice_mut()[0] = T::of(-0.0);
        model.fc1.weight_slice_mut()[1] = T::min_positive_value() / T::of(3.0); // subnormal
        model.fc1.weight_slice_mut()[2] = T::of(1.0) / T::of(3.0);
        model.fc1.bias_slice_mut()[0] = T::infinity();
        let exp_avg: Vec<T> = (0..20).map(|i| T::of(i as f64 * 0.1 - 1.0)).collect();
        let step = vec![T::of(7.0)];
        let mut meta = Metadata::new();
        meta.insert("step".into(), "123".into());
        meta.insert("optimizer".into(), "adam".into());
        meta.insert("optimizer.lr".into(), "0.001".into());
        let extra: Vec<(String, Vec<usize>, &[T])> = vec![
            ("optim.fc1.weight.exp_avg".to_string(), vec![5, 4], &exp_avg),
            ("optim.step".to_string(), vec![], &step),
        ];
        save(&path, &model, extra, &meta).unwrap();

        let mut other = mlp::<T, 5>(2);
        assert_ne!(bits(&other), bits(&model));
        let mut exp_avg2 = [T::zero(); 20];
        let mut step2 = [T::zero(); 1];
        let got = load(
            &path,
            &mut other,
            [("optim.fc1.weight.exp_avg", vec![5, 4], &mut exp_avg2[..]), ("optim.step", vec![], &mut step2[..])],
        )
        .unwrap();
        assert_eq!(bits(&other), bits(&model), "bit-exact");
        assert_eq!(exp_avg2.iter().map(|x| Float::to_f64(*x).to_bits()).collect::<Vec<_>>(), {
            exp_avg.iter().map(|x| Float::to_f64(*x).to_bits()).collect::<Vec<_>>()
        });
        assert_eq!(step2[..], step[..]);
        assert_eq!(got["step"], "123");
        assert_eq!(got["optimizer"], "adam");
        assert_eq!(got["format"], "pt");
        assert_eq!(got[EXTRA_TENSORS_KEY], "optim.fc1.weight.exp_avg,optim.step");

        let ck = Checkpoint::open(&path).unwrap();
        assert_eq!(ck.parse::<u64>("step").unwrap(), 123);
        assert_eq!(ck.dtype("fc1.weight").as_deref(), Some(T::DTYPE));
        assert_eq!(ck.shape("fc2.weight"), Some(&[3, 5][..]));
        assert_eq!(ck.tensor::<T>("fc1.bias").unwrap(), model.fc1.bias_slice());
        // Weights only, for inference: the optimizer's tensors are ignored.
        let mut third = mlp::<T, 5>(3);
        ck.load_params(&mut third).unwrap();
        assert_eq!(bits(&third), bits(&model));
    }

    #[test]
    fn half_precision_values_convert_exactly() {
        let cases: [(u16, f64); 10] = [
            (0x3c00, 1.0),
            (0xc000, -2.0),
            (0x3555, 0.333_251_953_125),
            (0x7bff, 65504.0),
            (0x0400, 2f64.powi(-14)),
            (0x0001, 2f64.powi(-24)),
            (0x03ff, 1023.0 * 2f64.powi(-24)),
            (0x8000, -0.0),
            (0x7c00, f64::INFINITY),
            (0xfc00, f64::NEG_INFINITY),
        ];
        for (bits, value) in cases {
            let got = f16_to_f64(bits);
            assert!(got == value && got.is_sign_negative() == value.is_sign_negative(), "{bits:#06x}: {got}");
        }
        assert!(f16_to_f64(0x7e00).is_nan());
        let mut out = [0.0f32; 3];
        let bf16: Vec<u8> = [0x3f80u16, 0xc0a0, 0x0001].iter().flat_map(|b| b.to_le_bytes()).collect();
        decode(Dtype::BF16, &bf16, &mut out);
        assert_eq!(out, [1.0, -5.0, f32::from_bits(0x0001_0000)]);
    }

    #[test]
    fn round_trip_is_bit_exact_f32() {
        round_trip::<f32>();
    }

    #[test]
    fn round_trip_is_bit_exact_f64() {
        round_trip::<f64>();
    }

    /// The file against the safetensors specification, read by hand: an 8-byte little-endian
    /// header length, a JSON header, then the data; names and shapes as PyTorch's `nn.Linear`.
    #[test]
    fn layout_follows_the_safetensors_spec() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ck.safetensors");
        let model = mlp::<f32, 2>(4);
        save_params(&path, &model, &Metadata::from([("epoch".to_string(), "3".to_string())])).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
        assert_eq!(n % 8, 0, "the header is padded to 8 bytes");
        for piece in [
            r#""__metadata__":{"#,
            r#""epoch":"3""#,
            r#""format":"pt""#,
            r#""fc1.weight":{"dtype":"F32","shape":[2,4],"data_offsets":["#,
            r#""fc1.bias":{"dtype":"F32","shape":[2],"data_offsets":["#,
            r#""fc2.weight":{"dtype":"F32","shape":[3,2],"data_offsets":["#,
        ] {
            assert!(header.contains(piece), "{piece} in {header}");
        }
        assert!(!header.contains("fc2.bias"));
        // fc1.weight's bytes, row-major little-endian, where its offsets say.
        let at = header.find(r#""fc1.weight""#).unwrap();
        let offsets = &header[at..];
        let offsets = &offsets[offsets.find("data_offsets\":[").unwrap() + 15..];
        let offsets: Vec<usize> =
            offsets[..offsets.find(']').unwrap()].split(',').map(|s| s.parse().unwrap()).collect();
        let data = &bytes[8 + n + offsets[0]..8 + n + offsets[1]];
        let floats: Vec<f32> = data.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
        assert_eq!(floats, model.fc1.weight_slice());
        assert_eq!(floats[4], model.fc1.weight()[[1, 0]], "row-major [out, in]");
    }

    #[test]
    fn another_network_is_an_error_listing_every_difference() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ck.safetensors");
        let model = mlp::<f32, 5>(1);
        let state = [0.0f32; 20];
        save(&path, &model, [("optim.fc1.weight.exp_avg", vec![5, 4], &state[..])], &Metadata::new()).unwrap();

        // Hidden size 6 instead of 5; a differently named optimizer tensor requested.
        let mut wide = mlp::<f32, 6>(2);
        let before = bits(&wide);
        let mut buf = [0.0f32; 24];
        let err = Checkpoint::open(&path)
            .unwrap()
            .load(&mut wide, [("optim.fc1.weight.exp_avg_sq", vec![6, 4], &mut buf[..])])
            .unwrap_err();
        let msg = err.to_string();
        eprintln!("{msg}");
        assert!(msg.starts_with(&path.display().to_string()), "{msg}");
        for expected in [
            "5 differences",
            "different shape: fc1.weight is [5, 4] in the file, [6, 4] here",
            "different shape: fc1.bias is [5] in the file, [6] here",
            "different shape: fc2.weight is [3, 5] in the file, [3, 6] here",
            "missing: optim.fc1.weight.exp_avg_sq [6, 4] F32",
            "unexpected: optim.fc1.weight.exp_avg [5, 4] F32",
        ] {
            assert!(msg.contains(expected), "{expected:?} in {msg}");
        }
        assert_eq!(bits(&wide), before, "nothing changed");

        // The same network in f64: every tensor differs in dtype.
        let mut double = mlp::<f64, 5>(2);
        let msg = Checkpoint::open(&path).unwrap().load_params(&mut double).unwrap_err().to_string();
        assert!(
            msg.contains("3 differences") && msg.contains("different dtype: fc1.weight is F32 in the file, F64 here")
        );

        // Strict loading without the optimizer state names it as unexpected.
        let mut same = mlp::<f32, 5>(2);
        let msg = load(&path, &mut same, std::iter::empty::<ParamMut<f32>>()).unwrap_err().to_string();
        assert!(msg.contains("1 difference)") && msg.contains("unexpected: optim.fc1.weight.exp_avg"), "{msg}");
    }

    #[test]
    fn damaged_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ck.safetensors");
        let model = mlp::<f32, 5>(1);
        save_params(&path, &model, &Metadata::new()).unwrap();
        let good = std::fs::read(&path).unwrap();
        let bad = dir.path().join("bad.safetensors");
        let mut flipped_header = good.clone();
        flipped_header[10] = b'#';
        for (what, bytes) in [
            ("empty", Vec::new()),
            ("cut in the header", good[..40].to_vec()),
            ("cut in the data", good[..good.len() - 3].to_vec()),
            ("trailing bytes", [good.clone(), vec![0; 8]].concat()),
            ("broken JSON", flipped_header),
            ("huge header length", [u64::MAX.to_le_bytes().to_vec(), good[8..].to_vec()].concat()),
        ] {
            std::fs::write(&bad, bytes).unwrap();
            match Checkpoint::open(&bad) {
                Err(e @ Error::Format { .. }) => {
                    let msg = e.to_string();
                    assert!(
                        msg.starts_with(&bad.display().to_string()) && msg.contains("not a valid"),
                        "{what}: {msg}"
                    );
                }
                other => panic!("{what}: {other:?}"),
            }
        }
        match Checkpoint::open(dir.path().join("absent.safetensors")) {
            Err(Error::Io { path, .. }) => assert!(path.ends_with("absent.safetensors")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_tensors_are_refused_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ck.safetensors");
        let model = mlp::<f32, 5>(1);
        save_params(&path, &model, &Metadata::new()).unwrap();
        let old = std::fs::read(&path).unwrap();
        let short = [0.0f32; 3];
        let err = save(&path, &model, [("optim.x", vec![2, 2], &short[..])], &Metadata::new()).unwrap_err();
        assert!(matches!(err, Error::Shape { .. }), "{err}");
        let err = save(&path, &model, [("fc1.bias", vec![3], &short[..])], &Metadata::new()).unwrap_err();
        assert!(err.to_string().contains("used twice"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), old, "the old checkpoint is untouched");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
    }

    #[test]
    fn saving_over_a_checkpoint_replaces_it_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ck.safetensors");
        save_params(&path, &mlp::<f32, 5>(1), &Metadata::new()).unwrap();
        let newer = mlp::<f32, 5>(9);
        save_params(&path, &newer, &Metadata::new()).unwrap();
        let mut back = mlp::<f32, 5>(0);
        Checkpoint::open(&path).unwrap().load_params(&mut back).unwrap();
        assert_eq!(bits(&back), bits(&newer));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // Saving into a folder that does not exist fails and creates nothing.
        let err = save_params(dir.path().join("nope/ck.safetensors"), &newer, &Metadata::new()).unwrap_err();
        assert!(matches!(err, Error::Io { .. }));
    }
}
