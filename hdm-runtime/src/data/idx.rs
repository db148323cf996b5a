//! The IDX format of MNIST, Fashion-MNIST and EMNIST, raw or gzip-compressed.
//!
//! An IDX file is a header followed by the elements in row-major order:
//!
//! | bytes | content |
//! | --- | --- |
//! | 0, 1 | zero |
//! | 2 | element type: `0x08` unsigned byte, `0x09` signed byte, `0x0B` i16, `0x0C` i32, `0x0D` f32, `0x0E` f64 |
//! | 3 | number of dimensions `d` |
//! | 4 .. 4 + 4d | each dimension as a big-endian `u32` |
//! | then | the elements, big-endian |
//!
//! Every dataset in this family stores unsigned bytes, the only element type read here; the
//! others are recognised and refused by name.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The element type code of unsigned bytes, the one [`read_idx`] reads.
pub const IDX_U8: u8 = 0x08;

/// The first two bytes of every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The contents of an IDX file of unsigned bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Idx {
    /// The dimensions from the header, outermost first: `[10000, 28, 28]` for MNIST images,
    /// `[10000]` for labels.
    pub dims: Vec<usize>,
    /// The elements in row-major order; exactly the product of `dims` of them.
    pub data: Vec<u8>,
}

/// Reads an IDX file of unsigned bytes, raw or gzip-compressed (recognised by its content, not
/// its name).
///
/// The header is checked (magic number, element type, dimensions) and the body must hold exactly
/// the number of elements the dimensions give: a truncated file, trailing bytes, a corrupt gzip
/// stream or an unsupported element type are [`Error::Format`] naming the file and the problem; a
/// file that cannot be opened is [`Error::Io`].
pub fn read_idx(path: impl AsRef<Path>) -> Result<Idx> {
    let path = path.as_ref();
    let bytes = crate::files::read_regular_file(path)?;
    parse_idx(path, &bytes)
}

/// Parses the bytes of an IDX file (raw or gzip-compressed); `path` only names it in errors.
pub fn parse_idx(path: &Path, bytes: &[u8]) -> Result<Idx> {
    let named_gz = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    if bytes.starts_with(&GZIP_MAGIC) {
        let mut decoder = flate2::bufread::MultiGzDecoder::new(bytes);
        let mut reader =
            Reader { path, inner: &mut decoder, gzip: true, max_len: bytes.len().saturating_mul(MAX_DEFLATE_RATIO) };
        let idx = reader.read_idx()?;
        // `MultiGzDecoder` reads every concatenated member to the end of the file, so garbage
        // after the last member is an error here, not silently ignored.
        reader.expect_end(&idx)?;
        Ok(idx)
    } else if named_gz && !bytes.is_empty() {
        Err(format_error(path, "the name ends in .gz but the content is not gzip (it does not start with 1f 8b)"))
    } else {
        let mut slice = bytes;
        // Raw data are read from the bytes in memory: a header claiming more finds them missing.
        let mut reader = Reader { path, inner: &mut slice, gzip: false, max_len: usize::MAX };
        let idx = reader.read_idx()?;
        reader.expect_end(&idx)?;
        Ok(idx)
    }
}

fn format_error(path: &Path, problem: impl Into<String>) -> Error {
    Error::Format { path: path.to_path_buf(), problem: problem.into() }
}

/// Reads the (decompressed) IDX stream and turns every failure into a message about the file.
struct Reader<'a, R: ?Sized> {
    path: &'a Path,
    inner: &'a mut R,
    gzip: bool,
    /// The most data bytes a gzip file can hold: its length times [`MAX_DEFLATE_RATIO`].
    max_len: usize,
}

/// Deflate expands at most 1032 times (a run of 258 bytes per 2 bits): a header claiming more
/// data than that is refused before anything is reserved.
const MAX_DEFLATE_RATIO: usize = 1032;

impl<R: Read + ?Sized> Reader<'_, R> {
    /// Reads up to `buf.len()` bytes; returns how many came before the end of the stream.
    fn fill(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut got = 0;
        while got < buf.len() {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.stream_error(e)),
            }
        }
        Ok(got)
    }

    fn stream_error(&self, e: std::io::Error) -> Error {
        if self.gzip {
            format_error(self.path, format!("corrupt or truncated gzip data: {e}"))
        } else {
            format_error(self.path, format!("read failed: {e}"))
        }
    }

    fn read_idx(&mut self) -> Result<Idx> {
        let path = self.path;
        let mut magic = [0u8; 4];
        let got = self.fill(&mut magic)?;
        if got < 4 {
            return Err(format_error(
                path,
                format!("truncated header: {got} bytes, but an IDX file starts with a 4-byte magic number"),
            ));
        }
        if magic[0] != 0 || magic[1] != 0 {
            return Err(format_error(
                path,
                format!(
                    "bad magic number {:02x} {:02x} {:02x} {:02x}: an IDX file starts with two zero bytes \
                     (is this an MNIST-style IDX file?)",
                    magic[0], magic[1], magic[2], magic[3]
                ),
            ));
        }
        let type_code = magic[2];
        if type_code != IDX_U8 {
            let name = match type_code {
                0x09 => "signed bytes (0x09)".to_string(),
                0x0B => "16-bit integers (0x0B)".to_string(),
                0x0C => "32-bit integers (0x0C)".to_string(),
                0x0D => "32-bit floats (0x0D)".to_string(),
                0x0E => "64-bit floats (0x0E)".to_string(),
                other => {
                    return Err(format_error(path, format!("bad magic number: unknown element type 0x{other:02x}")))
                }
            };
            return Err(format_error(
                path,
                format!("elements are {name}; only unsigned bytes (type 0x08, as in MNIST) are supported"),
            ));
        }
        let ndim = magic[3] as usize;
        if ndim == 0 {
            return Err(format_error(path, "the header declares 0 dimensions"));
        }
        let mut dim_bytes = vec![0u8; 4 * ndim];
        let got = self.fill(&mut dim_bytes)?;
        if got < dim_bytes.len() {
            return Err(format_error(
                path,
                format!(
                    "truncated header: {ndim} dimensions need {} bytes after the magic number, found {got}",
                    dim_bytes.len()
                ),
            ));
        }
        let dims: Vec<usize> =
            dim_bytes.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize).collect();
        let len = dims
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| format_error(path, format!("dimensions {dims:?} are too large")))?;
        if len > self.max_len {
            return Err(format_error(
                path,
                format!(
                    "corrupt header: dimensions {dims:?} need {len} bytes of data, more than the {} that a \
                     gzip stream of this size can hold",
                    self.max_len
                ),
            ));
        }

        // Read at most `len` bytes: the buffer grows with what is really there, so a corrupt
        // header claiming huge dimensions cannot make us allocate more than the file holds.
        let mut data = Vec::with_capacity(len.min(1 << 26));
        (&mut *self.inner).take(len as u64).read_to_end(&mut data).map_err(|e| self.stream_error(e))?;
        if data.len() < len {
            return Err(format_error(
                path,
                format!(
                    "truncated: dimensions {dims:?} need {len} bytes of data after the header, found {}",
                    data.len()
                ),
            ));
        }
        Ok(Idx { dims, data })
    }

    /// Checks that nothing follows the data.
    fn expect_end(&mut self, idx: &Idx) -> Result<()> {
        let mut extra = [0u8; 4096];
        let mut count = 0usize;
        loop {
            let n = self.fill(&mut extra)?;
            count += n;
            if n < extra.len() || count >= 1 << 20 {
                break;
            }
        }
        if count > 0 {
            let more = if count >= 1 << 20 { "at least " } else { "" };
            return Err(format_error(
                self.path,
                format!(
                    "{more}{count} unexpected bytes after the {} bytes of data that dimensions {:?} give \
                     (wrong header or trailing garbage)",
                    idx.data.len(),
                    idx.dims
                ),
            ));
        }
        Ok(())
    }
}

/// The paths of an IDX file and of its compressed form: `name` and `name.gz` in `dir`.
pub(crate) fn candidates(dir: &Path, name: &str) -> [PathBuf; 2] {
    [dir.join(name), dir.join(format!("{name}.gz"))]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

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

    fn problem(r: Result<Idx>) -> String {
        match r {
            Err(Error::Format { path, problem }) => {
                assert_eq!(path, Path::new("f.idx"));
                problem
            }
            other => panic!("expected a format error, got {other:?}"),
        }
    }

    #[test]
    fn reads_raw_and_gzip_alike() {
        let mut file = header(0x08, &[2, 3]);
        file.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
        let raw = parse_idx(Path::new("a"), &file).unwrap();
        assert_eq!(raw, Idx { dims: vec![2, 3], data: vec![1, 2, 3, 4, 5, 6] });
        assert_eq!(parse_idx(Path::new("a.gz"), &gzip(&file)).unwrap(), raw);
        // Content decides, not the name.
        assert_eq!(parse_idx(Path::new("a"), &gzip(&file)).unwrap(), raw);
    }

    #[test]
    fn concatenated_gzip_members_are_one_stream() {
        let mut file = header(0x08, &[4]);
        file.extend_from_slice(&[9, 8, 7, 6]);
        let mut two = gzip(&file[..6]);
        two.extend(gzip(&file[6..]));
        assert_eq!(parse_idx(Path::new("a.gz"), &two).unwrap().data, [9, 8, 7, 6]);
    }

    #[test]
    fn damaged_headers_are_named() {
        let p = Path::new("f.idx");
        assert!(problem(parse_idx(p, &[])).contains("truncated header: 0 bytes"));
        assert!(problem(parse_idx(p, &[0, 0, 8])).contains("truncated header: 3 bytes"));
        assert!(problem(parse_idx(p, &[0, 0, 8, 3, 0, 0, 0, 1, 0])).contains("3 dimensions need 12 bytes"));
        assert!(problem(parse_idx(p, b"P5\n28 28\n")).contains("bad magic number 50 35"));
        assert!(problem(parse_idx(p, &header(0x0D, &[1]))).contains("32-bit floats (0x0D)"));
        assert!(problem(parse_idx(p, &header(0x42, &[1]))).contains("unknown element type 0x42"));
        assert!(problem(parse_idx(p, &header(0x08, &[]))).contains("0 dimensions"));
    }

    #[test]
    fn huge_dimensions_do_not_allocate_or_overflow() {
        let p = Path::new("f.idx");
        let msg = problem(parse_idx(p, &header(0x08, &[u32::MAX, u32::MAX, u32::MAX])));
        assert!(msg.contains("too large"), "{msg}");
        let mut file = header(0x08, &[u32::MAX]);
        file.extend_from_slice(&[1, 2, 3]);
        let msg = problem(parse_idx(p, &file));
        assert!(msg.contains("need 4294967295 bytes") && msg.contains("found 3"), "{msg}");
        // Compressed: refused from the header, before any data is inflated.
        let gz = gzip(&file);
        let msg = problem(parse_idx(p, &gz));
        assert!(msg.contains("corrupt header") && msg.contains("gzip stream of this size"), "{msg}");
    }

    #[test]
    fn truncated_body_and_trailing_bytes_are_errors() {
        let p = Path::new("f.idx");
        let mut file = header(0x08, &[2, 2]);
        file.extend_from_slice(&[1, 2, 3]);
        let msg = problem(parse_idx(p, &file));
        assert!(msg.contains("truncated") && msg.contains("need 4 bytes") && msg.contains("found 3"), "{msg}");
        file.extend_from_slice(&[4, 5, 6]);
        let msg = problem(parse_idx(p, &file));
        assert!(msg.contains("2 unexpected bytes"), "{msg}");
        let msg = problem(parse_idx(p, &gzip(&file)));
        assert!(msg.contains("2 unexpected bytes"), "{msg}");
    }

    #[test]
    fn corrupt_gzip_is_an_error() {
        let p = Path::new("f.idx");
        let mut file = header(0x08, &[100]);
        file.extend((0..100).map(|i| (i * 7) as u8));
        let gz = gzip(&file);
        // Cut in the middle of the deflate stream.
        let msg = problem(parse_idx(p, &gz[..gz.len() / 2]));
        assert!(msg.contains("gzip"), "{msg}");
        // A flipped byte in the compressed data: a bad deflate block or a CRC mismatch.
        let mut bad = gz.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 0xff;
        let msg = problem(parse_idx(p, &bad));
        assert!(msg.contains("gzip") || msg.contains("truncated") || msg.contains("unexpected"), "{msg}");
        // Garbage after the gzip stream.
        let mut trailing = gz.clone();
        trailing.extend_from_slice(b"garbage");
        let msg = problem(parse_idx(p, &trailing));
        assert!(msg.contains("gzip"), "{msg}");
        // A name ending in .gz with something else inside.
        match parse_idx(Path::new("x.gz"), &file) {
            Err(Error::Format { problem, .. }) => assert!(problem.contains("not gzip"), "{problem}"),
            other => panic!("{other:?}"),
        }
    }
}
