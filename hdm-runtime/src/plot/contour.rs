//! Contour lines of a function sampled on a grid (marching squares), joined into polylines.

use std::ops::Range;

/// A function sampled on an `(nx + 1) x (ny + 1)` grid of points spanning the ranges.
pub(crate) struct Grid {
    x: Range<f64>,
    y: Range<f64>,
    nx: usize,
    ny: usize,
    /// Row-major by y: `values[j * (nx + 1) + i]` is `f(x_i, y_j)`.
    values: Vec<f64>,
}

impl Grid {
    pub(crate) fn sample(f: &dyn Fn(f64, f64) -> f64, x: Range<f64>, y: Range<f64>, nx: usize, ny: usize) -> Self {
        let mut values = Vec::with_capacity((nx + 1) * (ny + 1));
        for j in 0..=ny {
            for i in 0..=nx {
                values.push(f(coord(&x, i, nx), coord(&y, j, ny)));
            }
        }
        Grid { x, y, nx, ny, values }
    }

    fn value(&self, i: usize, j: usize) -> f64 {
        self.values[j * (self.nx + 1) + i]
    }

    /// The finite sampled values.
    pub(crate) fn finite_values(&self) -> impl Iterator<Item = f64> + '_ {
        self.values.iter().copied().filter(|v| v.is_finite())
    }

    /// Edge ids: `2 * point + 0` for the edge from grid point (i, j) to (i + 1, j), `+ 1` for
    /// the one to (i, j + 1).
    fn h(&self, i: usize, j: usize) -> usize {
        2 * (j * (self.nx + 1) + i)
    }
    fn v(&self, i: usize, j: usize) -> usize {
        2 * (j * (self.nx + 1) + i) + 1
    }

    /// Where the level crosses edge `id` (linear interpolation between its two grid points).
    fn crossing(&self, id: usize, level: f64) -> (f64, f64) {
        let point = id / 2;
        let (i, j) = (point % (self.nx + 1), point / (self.nx + 1));
        let (i2, j2) = if id.is_multiple_of(2) { (i + 1, j) } else { (i, j + 1) };
        let (v1, v2) = (self.value(i, j), self.value(i2, j2));
        let t = (level - v1) / (v2 - v1);
        let (x1, y1) = (coord(&self.x, i, self.nx), coord(&self.y, j, self.ny));
        let (x2, y2) = (coord(&self.x, i2, self.nx), coord(&self.y, j2, self.ny));
        (x1 + t * (x2 - x1), y1 + t * (y2 - y1))
    }

    /// The contour lines `f = level`, as polylines (closed ones end where they start). Cells
    /// with a non-finite corner are left out.
    pub(crate) fn contour(&self, level: f64) -> Vec<Vec<(f64, f64)>> {
        let mut segments: Vec<[usize; 2]> = Vec::new();
        for j in 0..self.ny {
            for i in 0..self.nx {
                // Corners: a bottom-left, b bottom-right, c top-right, d top-left.
                let (a, b, c, d) =
                    (self.value(i, j), self.value(i + 1, j), self.value(i + 1, j + 1), self.value(i, j + 1));
                if !(a.is_finite() && b.is_finite() && c.is_finite() && d.is_finite()) {
                    continue;
                }
                let above = [a >= level, b >= level, c >= level, d >= level];
                let (bottom, right, top, left) = (self.h(i, j), self.v(i + 1, j), self.h(i, j + 1), self.v(i, j));
                // The two edges that meet at each corner.
                let around = [[bottom, left], [bottom, right], [right, top], [top, left]];
                let crossing: Vec<usize> = [(0, 1, bottom), (1, 2, right), (3, 2, top), (0, 3, left)]
                    .into_iter()
                    .filter(|&(p, q, _)| above[p] != above[q])
                    .map(|(_, _, e)| e)
                    .collect();
                match crossing.len() {
                    2 => segments.push([crossing[0], crossing[1]]),
                    4 => {
                        // A saddle: the centre decides which pair of opposite corners is joined;
                        // the other two corners are cut off, each by a segment across it.
                        let centre = (a + b + c + d) / 4.0 >= level;
                        for corner in 0..4 {
                            if above[corner] != centre {
                                segments.push(around[corner]);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        self.join(&segments, level)
    }

    /// Joins segments sharing an edge into polylines.
    fn join(&self, segments: &[[usize; 2]], level: f64) -> Vec<Vec<(f64, f64)>> {
        const NONE: usize = usize::MAX;
        // Each edge is shared by at most two cells, so it ends at most two segments.
        let mut at_edge = vec![[NONE; 2]; 2 * (self.nx + 1) * (self.ny + 1)];
        for (s, seg) in segments.iter().enumerate() {
            for &e in seg {
                let slot = if at_edge[e][0] == NONE { 0 } else { 1 };
                at_edge[e][slot] = s;
            }
        }
        let other = |s: usize, e: usize| -> usize {
            let [p, q] = at_edge[e];
            if p == s {
                q
            } else {
                p
            }
        };
        let mut used = vec![false; segments.len()];
        let mut lines = Vec::new();
        for start in 0..segments.len() {
            if used[start] {
                continue;
            }
            used[start] = true;
            // Walk forward from the segment's second edge, then backward from its first.
            let mut edges = std::collections::VecDeque::from([segments[start][0], segments[start][1]]);
            for direction in 0..2 {
                let (mut s, mut e) = (start, segments[start][1 - direction]);
                loop {
                    let next = other(s, e);
                    if next == NONE || used[next] {
                        break;
                    }
                    used[next] = true;
                    e = if segments[next][0] == e { segments[next][1] } else { segments[next][0] };
                    s = next;
                    if direction == 0 {
                        edges.push_back(e);
                    } else {
                        edges.push_front(e);
                    }
                }
            }
            lines.push(edges.into_iter().map(|e| self.crossing(e, level)).collect());
        }
        lines
    }
}

fn coord(range: &Range<f64>, i: usize, n: usize) -> f64 {
    range.start + (range.end - range.start) * (i as f64 / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_circle_is_one_closed_line_on_the_level() {
        let f = |x: f64, y: f64| x * x + y * y;
        let grid = Grid::sample(&f, -2.0..2.0, -2.0..2.0, 100, 100);
        let lines = grid.contour(1.0);
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert_eq!(line.first(), line.last(), "closed");
        assert!(line.len() > 100, "{}", line.len());
        for &(x, y) in line {
            let r = (x * x + y * y).sqrt();
            assert!((r - 1.0).abs() < 1e-3, "r = {r}");
        }
        // The polyline goes round once: the turning angle adds up to 2 pi.
        let angle: f64 = line
            .windows(2)
            .map(|w| {
                let d = w[1].1.atan2(w[1].0) - w[0].1.atan2(w[0].0);
                (d + std::f64::consts::PI).rem_euclid(std::f64::consts::TAU) - std::f64::consts::PI
            })
            .sum();
        assert!((angle.abs() - std::f64::consts::TAU).abs() < 1e-9, "{angle}");
    }

    #[test]
    fn hyperbola_has_two_open_branches_and_nan_cells_are_skipped() {
        let f = |x: f64, y: f64| x * y;
        let grid = Grid::sample(&f, -2.0..2.0, -2.0..2.0, 40, 40);
        let lines = grid.contour(0.5);
        assert_eq!(lines.len(), 2);
        for line in &lines {
            assert_ne!(line.first(), line.last());
            for &(x, y) in line {
                assert!((x * y - 0.5).abs() < 0.02, "{x} {y}");
            }
        }
        // Saddle cells on the zero level: lines through the centre, none crossing a NaN region.
        let g = |x: f64, y: f64| if x > 1.0 { f64::NAN } else { x * y };
        let grid = Grid::sample(&g, -2.0..2.0, -2.0..2.0, 41, 41);
        for line in grid.contour(0.25) {
            assert!(line.iter().all(|&(x, _)| x <= 1.0 + 4.0 / 41.0));
        }
    }
}
