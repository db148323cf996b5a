//! Metrics written as they come, one row per epoch: CSV with a fixed header, or JSON lines.
//!
//! ```
//! use hdm_runtime::metrics::{MetricsWriter, Row, STANDARD_COLUMNS};
//!
//! # fn main() -> hdm_runtime::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! let mut metrics = MetricsWriter::create(dir.path().join("metrics.csv"), &STANDARD_COLUMNS)?;
//! metrics.write(
//!     &Row::new()
//!         .with("optimizer", "adam")
//!         .with("epoch", 1)
//!         .with("step", 100)
//!         .with("wall_s", 2.5)
//!         .with("train_loss", 0.31)
//!         .with("settings", "lr=0.001,betas=(0.9, 0.999)"),
//! )?;
//! // optimizer,epoch,step,wall_s,train_loss,test_loss,test_accuracy,settings
//! // adam,1,100,2.5,0.31,,,"lr=0.001,betas=(0.9, 0.999)"
//! # let text = std::fs::read_to_string(dir.path().join("metrics.csv")).unwrap();
//! # assert_eq!(text.lines().nth(1), Some(r#"adam,1,100,2.5,0.31,,,"lr=0.001,betas=(0.9, 0.999)""#));
//! # Ok(())
//! # }
//! ```

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The columns every example writes, in this order.
pub const STANDARD_COLUMNS: [&str; 8] =
    ["optimizer", "epoch", "step", "wall_s", "train_loss", "test_loss", "test_accuracy", "settings"];

/// One cell's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A signed integer.
    Int(i64),
    /// An unsigned integer.
    UInt(u64),
    /// A number, written with the fewest digits that read back to the same `f32`.
    F32(f32),
    /// A number, written with the fewest digits that read back to the same `f64`.
    F64(f64),
    /// Text.
    Text(String),
    /// Nothing: an empty CSV cell, `null` in JSON.
    Empty,
}

macro_rules! value_from {
    ($($t:ty => $variant:ident as $as:ty),* $(,)?) => {$(
        impl From<$t> for Value {
            fn from(x: $t) -> Self {
                Value::$variant(x as $as)
            }
        }
    )*};
}

value_from!(i32 => Int as i64, i64 => Int as i64, u32 => UInt as u64, u64 => UInt as u64, usize => UInt as u64);

impl From<f32> for Value {
    fn from(x: f32) -> Self {
        Value::F32(x)
    }
}
impl From<f64> for Value {
    fn from(x: f64) -> Self {
        Value::F64(x)
    }
}
impl From<&str> for Value {
    fn from(x: &str) -> Self {
        Value::Text(x.to_string())
    }
}
impl From<String> for Value {
    fn from(x: String) -> Self {
        Value::Text(x)
    }
}
impl<V: Into<Value>> From<Option<V>> for Value {
    fn from(x: Option<V>) -> Self {
        x.map_or(Value::Empty, Into::into)
    }
}

/// The values of one row, by column name; columns not set are left empty.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Row {
    cells: Vec<(String, Value)>,
}

impl Row {
    /// An empty row.
    pub fn new() -> Self {
        Row::default()
    }

    /// Sets `column` (replacing an earlier value).
    pub fn set(&mut self, column: &str, value: impl Into<Value>) -> &mut Self {
        let value = value.into();
        match self.cells.iter_mut().find(|(c, _)| c == column) {
            Some(cell) => cell.1 = value,
            None => self.cells.push((column.to_string(), value)),
        }
        self
    }

    /// [`set`](Row::set), by value, for chaining.
    pub fn with(mut self, column: &str, value: impl Into<Value>) -> Self {
        self.set(column, value);
        self
    }

    /// The value of `column`, if set.
    pub fn get(&self, column: &str) -> Option<&Value> {
        self.cells.iter().find(|(c, _)| c == column).map(|(_, v)| v)
    }
}

/// How rows are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated values (RFC 4180): a header line, then one line per row; a cell with a
    /// comma, quote or line break is quoted, quotes doubled. Non-finite numbers are `NaN`, `inf`
    /// and `-inf`, as Python and pandas read them.
    Csv,
    /// One JSON object per line, with every column as a key (`null` when empty or not finite).
    JsonLines,
}

impl Format {
    /// JSON lines for `.jsonl`, `.ndjson` and `.json`; CSV otherwise.
    pub fn from_path(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("jsonl" | "ndjson" | "json") => Format::JsonLines,
            _ => Format::Csv,
        }
    }
}

/// Writes rows with a fixed set of columns to a file, each row flushed as soon as it is written
/// (a run that stops keeps every finished row).
#[derive(Debug)]
pub struct MetricsWriter {
    path: PathBuf,
    file: File,
    columns: Vec<String>,
    format: Format,
}

impl MetricsWriter {
    /// Creates (or truncates) `path` and, for CSV, writes the header. The format follows the
    /// extension ([`Format::from_path`]).
    pub fn create(path: impl AsRef<Path>, columns: &[&str]) -> Result<Self> {
        let path = path.as_ref();
        Self::open(path, columns, Format::from_path(path), false)
    }

    /// Opens `path` to add rows after those already there (to resume a run). A CSV file that
    /// already has content must start with the same header; an empty or absent one gets it.
    pub fn append(path: impl AsRef<Path>, columns: &[&str]) -> Result<Self> {
        let path = path.as_ref();
        Self::open(path, columns, Format::from_path(path), true)
    }

    /// [`create`](MetricsWriter::create) or [`append`](MetricsWriter::append) with an explicit
    /// format.
    pub fn open(path: impl AsRef<Path>, columns: &[&str], format: Format, append: bool) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let io = |source| Error::Io { path: path.clone(), source };
        if columns.is_empty() {
            return Err(Error::Other(format!("{}: a metrics file needs at least one column", path.display())));
        }
        for (i, c) in columns.iter().enumerate() {
            if columns[..i].contains(c) {
                return Err(Error::Other(format!("{}: column {c:?} is given twice", path.display())));
            }
        }
        let columns: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
        let header = csv_line(columns.iter().map(|c| Value::Text(c.clone())));
        let mut file = if append {
            OpenOptions::new().read(true).append(true).create(true).open(&path).map_err(io)?
        } else {
            File::create(&path).map_err(io)?
        };
        let mut existing = String::new();
        if append && format == Format::Csv {
            // Only the first line matters: read a bounded prefix.
            (&mut file).take(64 * 1024).read_to_string(&mut existing).map_err(io)?;
        }
        let writer = MetricsWriter { path: path.clone(), file, columns, format };
        if format == Format::Csv {
            if existing.is_empty() {
                writer.emit(&header)?;
            } else {
                let first = existing.lines().next().unwrap_or("");
                if first != header.trim_end() {
                    return Err(Error::Format {
                        path,
                        problem: format!(
                            "cannot append: its header is {first:?}, this run writes {:?}",
                            header.trim_end()
                        ),
                    });
                }
            }
        }
        Ok(writer)
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The columns, in order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Writes and flushes one row. Setting a column that is not in the header is an error (and
    /// writes nothing).
    pub fn write(&mut self, row: &Row) -> Result<()> {
        if let Some((unknown, _)) = row.cells.iter().find(|(c, _)| !self.columns.contains(c)) {
            return Err(Error::Other(format!(
                "{}: no column {unknown:?} (the columns are {})",
                self.path.display(),
                self.columns.join(", ")
            )));
        }
        let values = self.columns.iter().map(|c| row.get(c).cloned().unwrap_or(Value::Empty));
        let line = match self.format {
            Format::Csv => csv_line(values),
            Format::JsonLines => json_line(self.columns.iter().zip(values)),
        };
        self.emit(&line)
    }

    fn emit(&self, line: &str) -> Result<()> {
        let mut file = &self.file;
        file.write_all(line.as_bytes())
            .and_then(|()| file.flush())
            .map_err(|source| Error::Io { path: self.path.clone(), source })
    }
}

fn number(value: &Value) -> Option<String> {
    match *value {
        Value::Int(x) => Some(x.to_string()),
        Value::UInt(x) => Some(x.to_string()),
        // `{:?}` is the shortest representation that reads back exactly, with an exponent for
        // very small or large magnitudes (`1e-7`), which CSV readers and JSON accept.
        Value::F32(x) if x.is_finite() => Some(format!("{x:?}")),
        Value::F64(x) if x.is_finite() => Some(format!("{x:?}")),
        _ => None,
    }
}

fn csv_line(values: impl Iterator<Item = Value>) -> String {
    let mut line = String::new();
    for (i, value) in values.enumerate() {
        if i > 0 {
            line.push(',');
        }
        let text = match &value {
            Value::Text(s) => Some(s.clone()),
            Value::Empty => None,
            Value::F32(x) if !x.is_finite() => Some(non_finite(*x as f64)),
            Value::F64(x) if !x.is_finite() => Some(non_finite(*x)),
            v => number(v),
        };
        if let Some(text) = text {
            if text.contains([',', '"', '\n', '\r']) || text.starts_with(' ') || text.ends_with(' ') {
                line.push('"');
                line.push_str(&text.replace('"', "\"\""));
                line.push('"');
            } else {
                line.push_str(&text);
            }
        }
    }
    line.push('\n');
    line
}

fn non_finite(x: f64) -> String {
    if x.is_nan() {
        "NaN".into()
    } else if x > 0.0 {
        "inf".into()
    } else {
        "-inf".into()
    }
}

fn json_line<'a>(cells: impl Iterator<Item = (&'a String, Value)>) -> String {
    let mut line = String::from("{");
    for (i, (column, value)) in cells.enumerate() {
        if i > 0 {
            line.push(',');
        }
        json_string(&mut line, column);
        line.push(':');
        match &value {
            Value::Text(s) => json_string(&mut line, s),
            v => line.push_str(number(v).as_deref().unwrap_or("null")),
        }
    }
    line.push_str("}\n");
    line
}

fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(epoch: u64, loss: f64, settings: &str) -> Row {
        Row::new().with("optimizer", "hdm").with("epoch", epoch).with("train_loss", loss).with("settings", settings)
    }

    /// The expected text was read back once with Python's `csv.DictReader`: the settings cells
    /// come back as `e=1,gamma=0.6667`, `say "hi"\nthere` and ` padded`, and `float()` reads
    /// `1e-7`, `inf` and `NaN`.
    #[test]
    fn csv_has_the_header_empty_cells_and_quoting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.csv");
        let mut w = MetricsWriter::create(&path, &STANDARD_COLUMNS).unwrap();
        w.write(&row(1, 0.25, "e=1,gamma=0.6667")).unwrap();
        // Each row is on disk as soon as it is written.
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
        w.write(&row(2, 1e-7, "say \"hi\"\nthere").with("test_accuracy", 0.9812f32).with("step", 1200usize)).unwrap();
        w.write(&row(3, f64::NAN, " padded").with("wall_s", f64::INFINITY).with("test_loss", None::<f64>)).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "optimizer,epoch,step,wall_s,train_loss,test_loss,test_accuracy,settings\n\
             hdm,1,,,0.25,,,\"e=1,gamma=0.6667\"\n\
             hdm,2,1200,,1e-7,,0.9812,\"say \"\"hi\"\"\nthere\"\n\
             hdm,3,,inf,NaN,,,\" padded\"\n"
        );
    }

    #[test]
    fn unknown_and_duplicate_columns_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.csv");
        let mut w = MetricsWriter::create(&path, &["a", "b"]).unwrap();
        let err = w.write(&Row::new().with("a", 1).with("c", 2)).unwrap_err().to_string();
        assert!(err.contains("no column \"c\"") && err.contains("a, b"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a,b\n", "nothing written");
        assert!(MetricsWriter::create(&path, &["a", "a"]).is_err());
        assert!(MetricsWriter::create(&path, &[]).is_err());
        // Setting a column twice keeps the last value.
        w.write(Row::new().set("a", 1).set("a", 2)).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a,b\n2,\n");
    }

    #[test]
    fn append_continues_after_the_same_header_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.csv");
        MetricsWriter::create(&path, &["epoch", "loss"]).unwrap().write(&Row::new().with("epoch", 1)).unwrap();
        MetricsWriter::append(&path, &["epoch", "loss"]).unwrap().write(&Row::new().with("epoch", 2)).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "epoch,loss\n1,\n2,\n");
        let err = MetricsWriter::append(&path, &["epoch", "accuracy"]).unwrap_err().to_string();
        assert!(err.contains("cannot append") && err.contains("epoch,loss"), "{err}");
        // A new file gets its header when appended to.
        let fresh = dir.path().join("fresh.csv");
        MetricsWriter::append(&fresh, &["x"]).unwrap().write(&Row::new().with("x", -3)).unwrap();
        assert_eq!(std::fs::read_to_string(&fresh).unwrap(), "x\n-3\n");
        // `create` starts over.
        MetricsWriter::create(&path, &["epoch", "loss"]).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "epoch,loss\n");
    }

    #[test]
    fn json_lines_have_every_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let mut w =
            MetricsWriter::create(&path, &["optimizer", "epoch", "train_loss", "test_loss", "settings"]).unwrap();
        w.write(&row(1, 0.5, "a\"b\\c\u{1}\td")).unwrap();
        w.write(&row(2, f64::NAN, "")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "{\"optimizer\":\"hdm\",\"epoch\":1,\"train_loss\":0.5,\"test_loss\":null,\"settings\":\"a\\\"b\\\\c\\u0001\\td\"}\n\
             {\"optimizer\":\"hdm\",\"epoch\":2,\"train_loss\":null,\"test_loss\":null,\"settings\":\"\"}\n"
        );
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["optimizer"], "hdm");
        }
    }

    #[test]
    fn an_unwritable_path_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing/m.csv");
        match MetricsWriter::create(&path, &["a"]) {
            Err(Error::Io { path: p, .. }) => assert_eq!(p, path),
            other => panic!("{other:?}"),
        }
    }
}

/// Reads a CSV metrics file back: one map from column to cell text per row (empty cells are
/// empty strings). For plots drawn from a whole run, resumed runs included.
pub fn read_csv(path: impl AsRef<Path>) -> Result<Vec<std::collections::BTreeMap<String, String>>> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    let mut records = parse_csv(&text).map_err(|problem| Error::Format { path: path.to_path_buf(), problem })?;
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let header = records.remove(0);
    records
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            if r.len() != header.len() {
                return Err(Error::Format {
                    path: path.to_path_buf(),
                    problem: format!("row {} has {} cells, the header {}", i + 2, r.len(), header.len()),
                });
            }
            Ok(header.iter().cloned().zip(r).collect())
        })
        .collect()
}

/// RFC 4180 records: quoted cells may hold commas, doubled quotes and line breaks.
fn parse_csv(text: &str) -> std::result::Result<Vec<Vec<String>>, String> {
    let mut records = Vec::new();
    let (mut record, mut cell) = (Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') if cell.is_empty() => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut cell)),
            (false, '\r') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut cell));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => cell.push(c),
        }
    }
    if quoted {
        return Err("a quoted cell is not closed".into());
    }
    if !cell.is_empty() || !record.is_empty() {
        record.push(cell);
        records.push(record);
    }
    Ok(records)
}

#[cfg(test)]
mod read_tests {
    use super::*;

    #[test]
    fn rows_written_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.csv");
        let mut w = MetricsWriter::create(&path, &STANDARD_COLUMNS).unwrap();
        w.write(&Row::new().with("optimizer", "adam").with("epoch", 1u64).with("settings", "lr=0.001, \"b\"\nx"))
            .unwrap();
        w.write(&Row::new().with("optimizer", "hdm").with("train_loss", 0.25)).unwrap();
        let rows = read_csv(&path).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["settings"], "lr=0.001, \"b\"\nx");
        assert_eq!(rows[0]["epoch"], "1");
        assert_eq!(rows[1]["train_loss"], "0.25");
        assert_eq!(rows[1]["test_loss"], "");
        std::fs::write(&path, "a,b\n1\n").unwrap();
        assert!(read_csv(&path).unwrap_err().to_string().contains("row 2 has 1 cells"));
    }
}
