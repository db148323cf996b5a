//! Charts as SVG and PNG, with [plotters](https://docs.rs/plotters).
//!
//! - [`line_chart`]: one line per series (loss per epoch, loss against seconds, accuracy), with a
//!   legend, labelled axes and, if asked, a logarithmic y axis.
//! - [`contour_paths`]: the contour lines of a function of two variables with optimizer
//!   trajectories drawn over them.
//! - [`function_paths`]: a function of one variable with the iterates of each method on it.
//! - [`image_grid`], [`save_png`], [`save_gif`]: grids of small images (a generator's samples)
//!   and their animation over a run.
//!
//! The format follows the file's extension: `.svg` or `.png`; a path without an extension writes
//! both (`loss` gives `loss.svg` and `loss.png`). Each function returns the files written.
//! Non-finite points (and, on a logarithmic axis, points at or below zero) are left out: a line
//! breaks there instead of jumping. PNG text is drawn with an embedded DejaVu Sans font
//! (see `assets/LICENSE-DejaVu.txt`), so no system font library is needed.
//!
//! ```
//! use hdm_runtime::plot::{line_chart, LineChart, Series};
//!
//! # fn main() -> hdm_runtime::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! let chart = LineChart {
//!     title: "MNIST MLP".into(),
//!     x_label: "epoch".into(),
//!     y_label: "training loss".into(),
//!     log_y: true,
//!     series: vec![
//!         Series::new("HDM", vec![(1.0, 0.31), (2.0, 0.12), (3.0, 0.05)]),
//!         Series::new("Adam", vec![(1.0, 0.25), (2.0, 0.09), (3.0, 0.06)]),
//!     ],
//! };
//! let written = line_chart(dir.path().join("loss"), &chart)?; // loss.svg and loss.png
//! assert_eq!(written.len(), 2);
//! # Ok(())
//! # }
//! ```

mod contour;
mod images;

pub use image::GrayImage;
pub use images::{image_grid, load_gray, save_gif, save_png, side_by_side};

use std::ops::Range;
use std::path::{Path, PathBuf};

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::{Error, Result};

/// The size of every chart, in pixels (SVG user units).
pub const SIZE: (u32, u32) = (1000, 700);

/// The font family every text is drawn with; in PNG files it is the embedded DejaVu Sans.
const FONT: &str = "sans-serif";

static DEJAVU_SANS: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// Line colours, in order (matplotlib's `tab10`).
const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Points drawn with markers when a series has at most this many.
const MARKERS_UP_TO: usize = 60;

/// Samples per side of the grid a contour plot evaluates its function on.
const CONTOUR_GRID: usize = 200;

/// Samples of the curve of a [`FunctionPlot`].
const CURVE_SAMPLES: usize = 400;

/// A named line: its points `(x, y)` in order, and how it is drawn.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    /// The name in the legend.
    pub label: String,
    /// The points, joined in this order.
    pub points: Vec<(f64, f64)>,
    /// The colour's index in the palette (matplotlib's `tab10`); `None` takes the series'
    /// position. Series of one run (an optimizer's training and test loss) share a colour.
    pub color: Option<usize>,
    /// Dashed, with hollow markers, instead of solid with filled ones: tells a run's test curve
    /// from its training curve, and keeps a curve visible where it coincides with another.
    pub dashed: bool,
}

impl Series {
    /// A series from its label and points.
    pub fn new(label: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series { label: label.into(), points, ..Default::default() }
    }

    /// The iterates `xs` of a method on the curve of `f`: the points `(x, f(x))`.
    pub fn on_curve(label: impl Into<String>, xs: &[f64], f: impl Fn(f64) -> f64) -> Self {
        Series::new(label, xs.iter().map(|&x| (x, f(x))).collect())
    }

    /// The same series in palette colour `index`.
    pub fn with_color(mut self, index: usize) -> Self {
        self.color = Some(index);
        self
    }

    /// The same series, dashed.
    pub fn dashed(mut self) -> Self {
        self.dashed = true;
        self
    }
}

/// A chart of lines, one per series.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LineChart {
    /// The caption above the chart.
    pub title: String,
    /// The x axis' description.
    pub x_label: String,
    /// The y axis' description.
    pub y_label: String,
    /// A logarithmic y axis (for losses spanning decades).
    pub log_y: bool,
    /// The lines.
    pub series: Vec<Series>,
}

/// The contour lines of a function of two variables with trajectories over them.
pub struct ContourPlot<'a> {
    /// The caption above the chart.
    pub title: String,
    /// The function.
    pub f: &'a dyn Fn(f64, f64) -> f64,
    /// The x axis' extent.
    pub x_range: Range<f64>,
    /// The y axis' extent.
    pub y_range: Range<f64>,
    /// The values to draw contour lines at ([`log_levels`], [`linear_levels`]); empty to draw
    /// 15 lines at quantiles of the function's values over the chart, which suits any function.
    pub levels: Vec<f64>,
    /// The trajectories: points `(x, y)` in order, drawn as lines with markers. Parts outside
    /// the ranges are clipped.
    pub paths: Vec<Series>,
}

/// A function of one variable with the iterates of methods on its curve.
pub struct FunctionPlot<'a> {
    /// The caption above the chart.
    pub title: String,
    /// The function.
    pub f: &'a dyn Fn(f64) -> f64,
    /// The x axis' extent.
    pub x_range: Range<f64>,
    /// A logarithmic y axis.
    pub log_y: bool,
    /// The iterates of each method as points `(x, y)`, usually `(x_k, f(x_k))`
    /// ([`Series::on_curve`]). Parts outside the x range are clipped.
    pub paths: Vec<Series>,
}

/// `n` values from `lo` to `hi` (both positive) evenly spaced on a logarithmic scale.
pub fn log_levels(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let (a, b) = (lo.ln(), hi.ln());
    (0..n).map(|k| (a + (b - a) * k as f64 / (n.max(2) - 1) as f64).exp()).collect()
}

/// `n` values from `lo` to `hi`, evenly spaced.
pub fn linear_levels(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    (0..n).map(|k| lo + (hi - lo) * k as f64 / (n.max(2) - 1) as f64).collect()
}

/// Writes a line chart to `path` (`.svg`, `.png`, or no extension for both); returns the files.
pub fn line_chart(path: impl AsRef<Path>, chart: &LineChart) -> Result<Vec<PathBuf>> {
    render(path.as_ref(), chart)
}

/// Writes a contour plot with trajectories to `path` (`.svg`, `.png`, or no extension for
/// both); returns the files.
pub fn contour_paths(path: impl AsRef<Path>, plot: &ContourPlot<'_>) -> Result<Vec<PathBuf>> {
    render(path.as_ref(), plot)
}

/// Writes a function's curve with the iterates of each method to `path` (`.svg`, `.png`, or no
/// extension for both); returns the files.
pub fn function_paths(path: impl AsRef<Path>, plot: &FunctionPlot<'_>) -> Result<Vec<PathBuf>> {
    render(path.as_ref(), plot)
}

/// Something drawn on any plotters backend; errors are messages.
trait Figure {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> std::result::Result<(), String>;
}

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

fn render(path: &Path, figure: &impl Figure) -> Result<Vec<PathBuf>> {
    register_font();
    let targets: Vec<PathBuf> = match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase) {
        Some(e) if e == "svg" || e == "png" => vec![path.to_path_buf()],
        None => vec![path.with_extension("svg"), path.with_extension("png")],
        Some(other) => {
            return Err(Error::Other(format!(
                "{}: cannot write a .{other} chart; use .svg, .png, or no extension for both",
                path.display()
            )))
        }
    };
    for target in &targets {
        let failed = |problem: String| Error::Io { path: target.clone(), source: std::io::Error::other(problem) };
        if target.extension().is_some_and(|e| e.eq_ignore_ascii_case("svg")) {
            let root = SVGBackend::new(target, SIZE).into_drawing_area();
            figure.draw(&root).map_err(failed)?;
            root.present().map_err(|e| failed(e.to_string()))?;
        } else {
            let root = BitMapBackend::new(target, SIZE).into_drawing_area();
            figure.draw(&root).map_err(failed)?;
            root.present().map_err(|e| failed(e.to_string()))?;
        }
        // plotters reports some write failures only by not writing: check.
        if !target.is_file() {
            return Err(failed("the chart was not written".into()));
        }
    }
    Ok(targets)
}

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Cannot fail on this font; if it did, text would be missing from PNG files only.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, DEJAVU_SANS);
    });
}

/// Tick labels: plain for moderate magnitudes, `1e-4` style otherwise.
fn tick(v: &f64) -> String {
    let a = v.abs();
    if *v == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        let s = format!("{v:.1e}");
        s.replace(".0e", "e")
    } else {
        let s = format!("{v:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    }
}

/// A number with 3 significant digits.
fn short(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 || !v.is_finite() {
        format!("{v}")
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.2e}")
    } else {
        let decimals = (2 - a.log10().floor() as i32).max(0) as usize;
        let s = format!("{v:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    }
}

/// The smallest and largest of `values`, widened a little (or around a single value).
fn padded(values: impl Iterator<Item = f64>, log: bool) -> Option<Range<f64>> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return None;
    }
    Some(if log {
        // Whole decades, so that the axis always has labelled powers of ten at both ends; a hair
        // wider, because plotters rounds `log10(0.1) = -0.99999...` up and would skip the first
        // decade's ticks.
        let (a, b) = (lo.log10().floor(), hi.log10().ceil());
        10f64.powf(a) * (1.0 - 1e-9)..10f64.powf(if b > a { b } else { a + 1.0 }) * (1.0 + 1e-9)
    } else {
        let pad = if hi > lo { 0.05 * (hi - lo) } else { 0.5 * lo.abs().max(1.0) };
        lo - pad..hi + pad
    })
}

/// The runs of consecutive drawable points of a series.
fn runs(points: &[(f64, f64)], log_y: bool) -> Vec<Vec<(f64, f64)>> {
    let ok = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite() && (!log_y || y > 0.0);
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut current = Vec::new();
    for p in points {
        if ok(p) {
            current.push(*p);
        } else if !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The part of segment `a`-`b` inside the box (Liang-Barsky), if any.
fn clip_segment(a: (f64, f64), b: (f64, f64), x: &Range<f64>, y: &Range<f64>) -> Option<((f64, f64), (f64, f64))> {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in [(-dx, a.0 - x.start), (dx, x.end - a.0), (-dy, a.1 - y.start), (dy, y.end - a.1)] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let t = q / p;
            if p < 0.0 {
                t0 = t0.max(t);
            } else {
                t1 = t1.min(t);
            }
        }
    }
    (t0 <= t1).then_some(((a.0 + t0 * dx, a.1 + t0 * dy), (a.0 + t1 * dx, a.1 + t1 * dy)))
}

/// A path cut to the box: the visible pieces, as polylines.
fn clip_path(points: &[(f64, f64)], x: &Range<f64>, y: &Range<f64>) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    for run in runs(points, false) {
        if run.len() == 1 {
            if x.contains(&run[0].0) && y.contains(&run[0].1) {
                out.push(run);
            }
            continue;
        }
        let mut current: Vec<(f64, f64)> = Vec::new();
        for w in run.windows(2) {
            match clip_segment(w[0], w[1], x, y) {
                Some((p, q)) => {
                    if current.last() != Some(&p) {
                        if !current.is_empty() {
                            out.push(std::mem::take(&mut current));
                        }
                        current.push(p);
                    }
                    current.push(q);
                }
                None => {
                    if !current.is_empty() {
                        out.push(std::mem::take(&mut current));
                    }
                }
            }
        }
        if !current.is_empty() {
            out.push(current);
        }
    }
    out
}

/// Draws the series as lines (with markers when there are few points) and the legend.
fn draw_series<'a, DB, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y>>,
    series: &[Series],
    pieces: impl Fn(&Series) -> Vec<Vec<(f64, f64)>>,
    visible: impl Fn(&(f64, f64)) -> bool,
    first_color: usize,
) -> std::result::Result<(), String>
where
    DB: DrawingBackend + 'a,
    Y: Ranged<ValueType = f64>,
{
    // Solid lines first, dashed ones over them: where two runs coincide, both show.
    let order =
        series.iter().enumerate().filter(|(_, s)| !s.dashed).chain(series.iter().enumerate().filter(|(_, s)| s.dashed));
    for (k, s) in order {
        let color = series_color(s, first_color + k);
        let pieces = pieces(s);
        let markers = s.points.len() <= MARKERS_UP_TO;
        let line = color.stroke_width(2);
        // The first draw carries the legend entry (for charts whose legend plotters draws), even
        // for a series with nothing to show.
        let mut labelled = false;
        for piece in pieces.iter().chain(pieces.is_empty().then(Vec::new).as_ref()) {
            let drawn = if s.dashed {
                chart.draw_series(DashedLineSeries::new(piece.iter().copied(), 9, 6, line)).map_err(err)?
            } else {
                chart.draw_series(LineSeries::new(piece.iter().copied(), line)).map_err(err)?
            };
            if !labelled {
                labelled = true;
                drawn.label(s.label.as_str()).legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(-10, 0), (10, 0)], color.stroke_width(2))
                        + Circle::new((0, 0), if markers { 3 } else { 0 }, color.filled())
                });
            }
        }
        if markers {
            // At the points themselves, not where a clipped line leaves the chart.
            let points = s.points.iter().filter(|p| visible(p));
            if s.dashed {
                chart.draw_series(points.map(|&p| Circle::new(p, 5, color.stroke_width(2)))).map_err(err)?;
            } else {
                chart.draw_series(points.map(|&p| Circle::new(p, 3, color.filled()))).map_err(err)?;
            }
        }
    }
    Ok(())
}

/// A series' colour: its own, else the palette's next.
fn series_color(s: &Series, position: usize) -> RGBColor {
    COLORS[s.color.unwrap_or(position) % COLORS.len()]
}

/// Width of the legend panel, beside the plotting area so that it never covers data.
const LEGEND_WIDTH: u32 = 230;

/// The legend in its own panel: each series' line (dashed or solid) and marker, its label, then
/// `notes` (an axis clipped, say) in smaller type.
fn legend_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    series: &[Series],
    notes: &[String],
) -> std::result::Result<(), String> {
    let (x0, mut y) = (8i32, 40i32);
    let font = (FONT, 16).into_font().color(&BLACK);
    for (k, s) in series.iter().enumerate() {
        let color = series_color(s, k);
        let line = color.stroke_width(2);
        let markers = s.points.len() <= MARKERS_UP_TO;
        if s.dashed {
            area.draw(&PathElement::new(vec![(x0, y), (x0 + 9, y)], line)).map_err(err)?;
            area.draw(&PathElement::new(vec![(x0 + 15, y), (x0 + 24, y)], line)).map_err(err)?;
            if markers {
                area.draw(&Circle::new((x0 + 12, y), 5, color.stroke_width(2))).map_err(err)?;
            }
        } else {
            area.draw(&PathElement::new(vec![(x0, y), (x0 + 24, y)], line)).map_err(err)?;
            if markers {
                area.draw(&Circle::new((x0 + 12, y), 3, color.filled())).map_err(err)?;
            }
        }
        area.draw(&Text::new(s.label.clone(), (x0 + 32, y - 9), font.clone())).map_err(err)?;
        y += 26;
    }
    let small = (FONT, 13).into_font().color(&BLACK.mix(0.75));
    for note in notes {
        y += 10;
        for line in wrap(note, 30) {
            area.draw(&Text::new(line, (x0, y - 8), small.clone())).map_err(err)?;
            y += 17;
        }
    }
    Ok(())
}

/// `text` in lines of at most `width` characters, broken at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split(' ') {
        match lines.last_mut() {
            Some(line) if line.chars().count() + 1 + word.chars().count() <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

fn legend<'a, DB: DrawingBackend + 'a, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y>>,
) -> std::result::Result<(), String> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font((FONT, 16))
        .draw()
        .map_err(err)
}

/// The chart frame: caption, axes with labels.
fn frame<'a, DB, Y>(
    root: &'a DrawingArea<DB, Shift>,
    title: &str,
    x: Range<f64>,
    y: Y,
    x_label: &str,
    y_label: &str,
) -> std::result::Result<ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y::CoordDescType>>, String>
where
    DB: DrawingBackend,
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    root.fill(&WHITE).map_err(err)?;
    let mut builder = ChartBuilder::on(root);
    if !title.is_empty() {
        builder.caption(title, (FONT, 26));
    }
    // Whole numbers on x (epochs, steps) get whole-number labels only.
    let span = x.end - x.start;
    let integer_x = x.start.fract() == 0.0 && x.end.fract() == 0.0 && (1.0..=1e6).contains(&span);
    let x_labels = if integer_x && span < 10.0 { span as usize + 1 } else { 10 };
    let mut chart =
        builder.margin(20).x_label_area_size(55).y_label_area_size(85).build_cartesian_2d(x, y).map_err(err)?;
    let x_tick = move |v: &f64| if integer_x && v.fract() != 0.0 { String::new() } else { tick(v) };
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 18))
        .x_labels(x_labels)
        .x_label_formatter(&x_tick)
        .y_label_formatter(&tick)
        .y_labels(12)
        .light_line_style(RGBColor(238, 238, 238))
        .bold_line_style(RGBColor(215, 215, 215))
        .draw()
        .map_err(err)?;
    Ok(chart)
}

/// The top of a logarithmic loss axis: a decade above the highest of the series' medians, so
/// that a run that diverges (or starts) at huge values does not flatten the others. `None` when
/// nothing goes above it.
fn clip_top(series: &[Series], values_top: f64) -> Option<f64> {
    let median = |s: &Series| {
        let mut v: Vec<f64> = s.points.iter().map(|p| p.1).filter(|y| y.is_finite() && *y > 0.0).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    let level = series.iter().filter_map(median).fold(f64::NEG_INFINITY, f64::max);
    let cap = 10f64.powf(level.log10().ceil() + 1.0);
    (cap.is_finite() && values_top > cap).then_some(cap)
}

impl Figure for LineChart {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> std::result::Result<(), String> {
        root.fill(&WHITE).map_err(err)?;
        // The title over the whole width, then the chart beside its legend panel.
        let body = root.titled(&self.title, (FONT, 26)).map_err(err)?;
        let (width, _) = body.dim_in_pixel();
        let (plot_area, legend_area) = body.split_horizontally(width.saturating_sub(LEGEND_WIDTH));
        let all: Vec<(f64, f64)> = self.series.iter().flat_map(|s| runs(&s.points, self.log_y)).flatten().collect();
        let x = padded(all.iter().map(|p| p.0), false).map_or(0.0..1.0, |r| {
            // No padding on x unless all points share one x.
            let (lo, hi) = all.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.0), b.max(p.0)));
            if hi > lo {
                lo..hi
            } else {
                r
            }
        });
        let mut notes = Vec::new();
        let mut missing: Vec<&str> = Vec::new();
        for s in &self.series {
            let shown = runs(&s.points, self.log_y).iter().map(Vec::len).sum::<usize>();
            if shown < s.points.len() {
                missing.push(&s.label);
            }
        }
        if !missing.is_empty() {
            let what = if self.log_y { "not finite or not positive" } else { "not finite" };
            notes.push(format!("Points {what} are left out: {}.", missing.join(", ")));
        }
        if self.log_y {
            let top = all.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
            let cap = clip_top(&self.series, top);
            let mut y =
                padded(all.iter().map(|p| p.1).filter(|&v| cap.is_none_or(|c| v <= c)), true).unwrap_or(0.1..10.0);
            if let Some(c) = cap {
                y.end = c;
                let above: Vec<&str> = self
                    .series
                    .iter()
                    .filter(|s| s.points.iter().any(|p| p.1.is_finite() && p.1 > c))
                    .map(|s| s.label.as_str())
                    .collect();
                notes.push(format!("Axis cut at {}: {} goes above.", tick(&c), above.join(", ")));
            }
            // Cut at the axis: lines leave through the top instead of being drawn outside.
            // Clipped in log space, where the chart draws lines straight.
            let (xr, log_box) = (x.clone(), y.start.log10()..y.end.log10());
            let pieces = |s: &Series| -> Vec<Vec<(f64, f64)>> {
                let logged = |r: &Vec<(f64, f64)>| r.iter().map(|&(x, y)| (x, y.log10())).collect::<Vec<_>>();
                let unlog = |p: Vec<(f64, f64)>| p.into_iter().map(|(x, y)| (x, 10f64.powf(y))).collect::<Vec<_>>();
                runs(&s.points, true).iter().flat_map(|r| clip_path(&logged(r), &xr, &log_box)).map(unlog).collect()
            };
            let visible = |&(px, py): &(f64, f64)| px.is_finite() && py > 0.0 && py <= y.end && py.is_finite();
            let mut chart = frame(&plot_area, "", x, y.clone().log_scale(), &self.x_label, &self.y_label)?;
            draw_series(&mut chart, &self.series, pieces, visible, 0)?;
        } else {
            let pieces = |s: &Series| runs(&s.points, false);
            let visible = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite();
            let y = padded(all.iter().map(|p| p.1), false).unwrap_or(0.0..1.0);
            let mut chart = frame(&plot_area, "", x, y, &self.x_label, &self.y_label)?;
            draw_series(&mut chart, &self.series, pieces, visible, 0)?;
        }
        legend_panel(&legend_area, &self.series, &notes)
    }
}

/// Viridis, from a few of its anchor colours: dark purple (0) to yellow (1).
fn viridis(t: f64) -> RGBColor {
    const ANCHORS: [(f64, f64, f64); 5] =
        [(68.0, 1.0, 84.0), (59.0, 82.0, 139.0), (33.0, 145.0, 140.0), (94.0, 201.0, 98.0), (253.0, 231.0, 37.0)];
    let t = t.clamp(0.0, 1.0) * (ANCHORS.len() - 1) as f64;
    let k = (t.floor() as usize).min(ANCHORS.len() - 2);
    let u = t - k as f64;
    let (a, b) = (ANCHORS[k], ANCHORS[k + 1]);
    let mix = |p: f64, q: f64| (p + u * (q - p)).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// 15 levels for a function whose values over the chart are `values`: log-spaced from the
/// 0.5% quantile (or the smallest positive value) to the 95% quantile when those are positive
/// and two decades or more apart (a loss, a quadratic bowl, Rosenbrock's function: the
/// landscape near the minimum shows), else at evenly spaced quantiles.
fn auto_levels(mut values: Vec<f64>) -> Vec<f64> {
    const N: usize = 15;
    values.sort_by(f64::total_cmp);
    let quantile = |q: f64| values[((values.len() - 1) as f64 * q) as usize];
    let hi = quantile(0.95);
    let lo = match quantile(0.005) {
        lo if lo > 0.0 => lo,
        0.0 => values.iter().copied().find(|&v| v > 0.0).unwrap_or(0.0),
        lo => lo,
    };
    let mut levels = if lo > 0.0 && hi / lo >= 100.0 {
        log_levels(lo, hi, N)
    } else {
        (1..=N).map(|k| quantile(k as f64 / (N + 1) as f64)).collect()
    };
    levels.dedup();
    levels
}

impl Figure for ContourPlot<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> std::result::Result<(), String> {
        let (x, y) = (self.x_range.clone(), self.y_range.clone());
        if !(x.start < x.end && y.start < y.end) {
            return Err(format!("empty range: x {x:?}, y {y:?}"));
        }
        let grid = contour::Grid::sample(self.f, x.clone(), y.clone(), CONTOUR_GRID, CONTOUR_GRID);
        let mut levels: Vec<f64> = self.levels.iter().copied().filter(|l| l.is_finite()).collect();
        if levels.is_empty() {
            let values: Vec<f64> = grid.finite_values().collect();
            if !values.is_empty() {
                levels = auto_levels(values);
            }
        }
        levels.sort_by(f64::total_cmp);
        let mut chart = frame(root, &self.title, x.clone(), y.clone(), "x", "y")?;
        for (k, &level) in levels.iter().enumerate() {
            let color = viridis(k as f64 / (levels.len().max(2) - 1) as f64);
            let lines = grid.contour(level);
            let drawn = chart
                .draw_series(lines.into_iter().map(|l| PathElement::new(l, color.mix(0.8).stroke_width(1))))
                .map_err(err)?;
            if k == 0 {
                let label = format!(
                    "f = {} ... {} ({} levels)",
                    short(levels[0]),
                    short(levels[levels.len() - 1]),
                    levels.len()
                );
                drawn
                    .label(label)
                    .legend(|(x, y)| PathElement::new(vec![(x - 10, y), (x + 10, y)], viridis(0.4).stroke_width(1)));
            }
        }
        // Trajectories in the stronger colours, starting with red (clearer over viridis).
        draw_series(&mut chart, &self.paths, |s| clip_path(&s.points, &x, &y), |p| inside(p, &x, &y), 3)?;
        legend(&mut chart)
    }
}

/// Whether a point is in the box (and finite).
fn inside(&(px, py): &(f64, f64), x: &Range<f64>, y: &Range<f64>) -> bool {
    x.start <= px && px <= x.end && y.start <= py && py <= y.end
}

impl Figure for FunctionPlot<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> std::result::Result<(), String> {
        let x = self.x_range.clone();
        if x.start >= x.end {
            return Err(format!("empty x range {x:?}"));
        }
        let curve: Vec<(f64, f64)> = (0..=CURVE_SAMPLES)
            .map(|k| {
                let t = x.start + (x.end - x.start) * k as f64 / CURVE_SAMPLES as f64;
                (t, (self.f)(t))
            })
            .collect();
        let in_x = |p: &&(f64, f64)| x.start <= p.0 && p.0 <= x.end;
        let ys = runs(&curve, self.log_y)
            .into_iter()
            .flatten()
            .chain(self.paths.iter().flat_map(|s| runs(&s.points, self.log_y)).flatten().filter(|p| in_x(&p)))
            .map(|p| p.1);
        let curve_series = [Series::new("f(x)", curve.clone())];
        if self.log_y {
            let y = padded(ys, true).unwrap_or(0.1..10.0);
            let mut chart = frame(root, &self.title, x.clone(), y.clone().log_scale(), "x", "f(x)")?;
            draw_series(&mut chart, &curve_series, |s| runs(&s.points, true), |_| false, 7)?;
            let clip = |s: &Series| -> Vec<Vec<(f64, f64)>> {
                runs(&s.points, true).iter().flat_map(|r| clip_path(r, &x, &y)).collect()
            };
            draw_series(&mut chart, &self.paths, clip, |p| inside(p, &x, &y), 3)?;
            legend(&mut chart)
        } else {
            let y = padded(ys, false).unwrap_or(0.0..1.0);
            let mut chart = frame(root, &self.title, x.clone(), y.clone(), "x", "f(x)")?;
            draw_series(&mut chart, &curve_series, |s| runs(&s.points, false), |_| false, 7)?;
            draw_series(&mut chart, &self.paths, |s| clip_path(&s.points, &x, &y), |p| inside(p, &x, &y), 3)?;
            legend(&mut chart)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_break_at_non_finite_and_non_positive_points() {
        let p = [(0.0, 1.0), (1.0, f64::NAN), (2.0, 3.0), (3.0, 4.0), (4.0, -1.0), (5.0, 2.0)];
        assert_eq!(runs(&p, false), [vec![(0.0, 1.0)], vec![(2.0, 3.0), (3.0, 4.0), (4.0, -1.0), (5.0, 2.0)]]);
        assert_eq!(runs(&p, true), [vec![(0.0, 1.0)], vec![(2.0, 3.0), (3.0, 4.0)], vec![(5.0, 2.0)]]);
    }

    #[test]
    fn clipping_keeps_what_is_inside_the_box() {
        let (x, y) = (0.0..1.0, 0.0..1.0);
        // Crossing the whole box horizontally.
        assert_eq!(clip_segment((-1.0, 0.5), (2.0, 0.5), &x, &y), Some(((0.0, 0.5), (1.0, 0.5))));
        assert_eq!(clip_segment((2.0, 2.0), (3.0, 3.0), &x, &y), None);
        // A path leaving the box and coming back gives two pieces.
        let pieces = clip_path(&[(0.5, 0.5), (0.5, 2.0), (0.25, 0.25)], &x, &y);
        assert_eq!(pieces.len(), 2);
        assert_eq!(pieces[0], [(0.5, 0.5), (0.5, 1.0)]);
        assert_eq!(pieces[1].last(), Some(&(0.25, 0.25)));
    }

    /// A run that diverges does not flatten the others: the log axis stops a decade above the
    /// highest median, and the legend panel says which series goes above.
    #[test]
    fn a_diverging_series_is_cut_at_a_decade_above_the_medians() {
        let good = Series::new("sgd", vec![(1.0, 2.3), (2.0, 0.5), (3.0, 0.1)]);
        let bad = Series::new("adam", vec![(1.0, 2.2), (2.0, 40.0), (3.0, 1e12)]);
        assert_eq!(clip_top(&[good.clone(), bad.clone()], 1e12), Some(1000.0));
        assert_eq!(clip_top(std::slice::from_ref(&good), 2.3), None);
        let dir = tempfile::tempdir().unwrap();
        let chart = LineChart {
            title: "diverging".into(),
            x_label: "epoch".into(),
            y_label: "loss".into(),
            log_y: true,
            series: vec![good, bad.dashed().with_color(0)],
        };
        let written = line_chart(dir.path().join("loss.svg"), &chart).unwrap();
        let svg = std::fs::read_to_string(&written[0]).unwrap();
        assert!(svg.contains("Axis cut at 1000: adam goes") && svg.contains("above."), "the note is drawn");
        assert!(svg.contains("stroke-dasharray") || svg.matches("<polyline").count() > 2, "dashed segments");
    }

    #[test]
    fn notes_wrap_at_spaces() {
        assert_eq!(wrap("Axis cut at 100: adam goes above.", 16), ["Axis cut at 100:", "adam goes above."]);
        assert_eq!(wrap("short", 30), ["short"]);
    }

    #[test]
    fn levels_and_ticks() {
        let l = log_levels(0.01, 100.0, 5);
        for (a, b) in l.iter().zip([0.01, 0.1, 1.0, 10.0, 100.0]) {
            assert!((a / b - 1.0).abs() < 1e-12, "{a} {b}");
        }
        assert_eq!(linear_levels(-1.0, 1.0, 3), [-1.0, 0.0, 1.0]);
        // Linear values: quantiles; values over decades: log-spaced.
        let linear = auto_levels((-800..=800).map(f64::from).collect());
        assert_eq!((linear.len(), linear[0], linear[14]), (15, -700.0, 700.0));
        let spread = auto_levels((0..=1000).map(|k| 10f64.powf(k as f64 / 100.0)).collect());
        assert_eq!(spread.len(), 15);
        assert!((spread[1] / spread[0] - spread[14] / spread[13]).abs() < 1e-9, "{spread:?}");
        assert_eq!(
            (tick(&0.001), tick(&2.5), tick(&1e-5), tick(&300000.0)),
            ("0.001".into(), "2.5".into(), "1e-5".into(), "3e5".into())
        );
        assert_eq!(
            (short(981.8654), short(4.5), short(0.012345), short(123456.0)),
            ("982".into(), "4.5".into(), "0.0123".into(), "1.23e5".into())
        );
        assert_eq!((viridis(0.0), viridis(1.0)), (RGBColor(68, 1, 84), RGBColor(253, 231, 37)));
    }
}
