//! Charts are written as SVG and PNG, with their legends; no pixel-exact snapshots.
#![cfg(feature = "plot")]

use std::path::Path;

use hdm_runtime::plot::{
    contour_paths, function_paths, line_chart, log_levels, ContourPlot, FunctionPlot, LineChart, Series,
};

/// Checks the PNG signature and the size in the IHDR chunk.
fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", path.display());
    assert_eq!(&bytes[12..16], b"IHDR");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((width, height), hdm_runtime::plot::SIZE);
    assert!(bytes.len() > 10_000, "a drawn chart, not a blank image: {} bytes", bytes.len());
}

fn svg(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"), "{}", path.display());
    text
}

fn loss_chart(log_y: bool) -> LineChart {
    // A loss over six decades, with a diverged point and a zero the log axis must skip.
    let hdm: Vec<(f64, f64)> = (1..=30).map(|e| (e as f64, 2.0 * (-0.5 * e as f64).exp())).collect();
    let mut adam: Vec<(f64, f64)> = (1..=30).map(|e| (e as f64, 1.0 / (e * e) as f64)).collect();
    adam[10].1 = f64::NAN;
    adam[20].1 = 0.0;
    LineChart {
        title: "MNIST MLP 784-500-500-10".into(),
        x_label: "epoch".into(),
        y_label: "training loss".into(),
        log_y,
        series: vec![
            Series::new("HDM (e=1, gamma=2/3)", hdm),
            Series::new("Adam <lr=1e-3> & defaults", adam),
            Series::new("empty", vec![]),
        ],
    }
}

#[test]
fn line_chart_writes_svg_and_png_with_legend() {
    let dir = tempfile::tempdir().unwrap();
    let written = line_chart(dir.path().join("loss"), &loss_chart(true)).unwrap();
    assert_eq!(written, [dir.path().join("loss.svg"), dir.path().join("loss.png")]);
    let text = svg(&written[0]);
    for label in ["HDM (e=1, gamma=2/3)", "Adam &lt;lr=1e-3&gt; &amp; defaults", "empty", "epoch", "training loss"] {
        assert!(text.contains(label), "{label} in the SVG");
    }
    assert_png(&written[1]);
    // Linear axis, one format at a time.
    let png = dir.path().join("acc.png");
    assert_eq!(line_chart(&png, &loss_chart(false)).unwrap(), std::slice::from_ref(&png));
    assert_png(&png);
    let svg_path = dir.path().join("acc.SVG");
    line_chart(&svg_path, &loss_chart(false)).unwrap();
    svg(&svg_path);
}

#[test]
fn line_chart_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = line_chart(dir.path().join("loss.jpg"), &loss_chart(true)).unwrap_err().to_string();
    assert!(err.contains("loss.jpg") && err.contains(".svg"), "{err}");
    for name in ["nope/loss.svg", "nope/loss.png"] {
        let err = line_chart(dir.path().join(name), &loss_chart(true)).unwrap_err().to_string();
        assert!(err.contains(name), "{err}");
    }
    // No points at all still gives a chart.
    let empty = LineChart { title: "nothing yet".into(), ..Default::default() };
    line_chart(dir.path().join("empty.svg"), &empty).unwrap();
}

#[test]
fn contour_plot_with_trajectories() {
    let dir = tempfile::tempdir().unwrap();
    let rosenbrock = |x: f64, y: f64| (1.0 - x).powi(2) + 100.0 * (y - x * x).powi(2);
    // Gradient descent and a path that leaves the window (clipped).
    let mut gd = vec![(-1.5, 2.0)];
    for _ in 0..40 {
        let (x, y) = *gd.last().unwrap();
        let (gx, gy) = (-2.0 * (1.0 - x) - 400.0 * x * (y - x * x), 200.0 * (y - x * x));
        gd.push((x - 2e-4 * gx, y - 2e-4 * gy));
    }
    let wild = vec![(0.0, 0.0), (3.0, 5.0), (-0.5, 0.5), (0.5, 0.25)];
    for levels in [log_levels(0.1, 1000.0, 12), vec![]] {
        let plot = ContourPlot {
            title: "Rosenbrock".into(),
            f: &rosenbrock,
            x_range: -2.0..2.0,
            y_range: -1.0..3.0,
            levels,
            paths: vec![Series::new("gradient descent", gd.clone()), Series::new("wild", wild.clone())],
        };
        let written = contour_paths(dir.path().join("rosenbrock"), &plot).unwrap();
        let text = svg(&written[0]);
        assert!(text.contains("gradient descent") && text.contains("wild") && text.contains("levels)"));
        assert!(text.matches("<polyline").count() >= 12, "contour lines are drawn");
        assert_png(&written[1]);
    }
}

#[test]
fn function_plot_with_iterates() {
    let dir = tempfile::tempdir().unwrap();
    let f = |x: f64| x.powi(4) - 3.0 * x * x + x + 4.0;
    let newton = [2.0, 1.4, 1.2, 1.13, 1.13];
    let sgd = [-2.0, -1.5, -1.35, -1.31, -1.30];
    for log_y in [false, true] {
        let plot = FunctionPlot {
            title: "a quartic".into(),
            f: &f,
            x_range: -2.2..2.2,
            log_y,
            paths: vec![Series::on_curve("Newton", &newton, f), Series::on_curve("gradient descent", &sgd, f)],
        };
        let written = function_paths(dir.path().join(format!("quartic-{log_y}")), &plot).unwrap();
        let text = svg(&written[0]);
        assert!(text.contains("Newton") && text.contains("gradient descent") && text.contains("f(x)"));
        assert_png(&written[1]);
    }
}
