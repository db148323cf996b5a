//! Pictures of a flock: each boid a circle of radius 10 with a line along its velocity (as the
//! tutorial's page draws it), optionally its sight circle and its trail, on a canvas of palette
//! indices written as an animated GIF or a PNG.

use std::borrow::Cow;
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use super::sim::{Flock, Params, V2};

/// The palette, as RGB triples: background, field border, trail, boid, velocity, sight circle.
const PALETTE: [[u8; 3]; 6] =
    [[250, 250, 246], [200, 200, 196], [176, 196, 222], [31, 60, 120], [214, 69, 40], [150, 200, 150]];
const BORDER: u8 = 1;
const TRAIL: u8 = 2;
const BOID: u8 = 3;
const VELOCITY: u8 = 4;
const SIGHT: u8 = 5;

/// A boid's circle radius and how far its velocity line reaches per unit of speed, in field units.
const RADIUS: f64 = 10.0;
const VELOCITY_SCALE: f64 = 6.0;

/// How the field maps to pixels: a margin around it (boids fly a little outside before the soft
/// walls turn them), scaled down so that the picture is at most `max_width` pixels wide.
#[derive(Clone, Copy, Debug)]
pub struct View {
    scale: f64,
    margin: f64,
    pub width: u16,
    pub height: u16,
}

impl View {
    pub fn new(p: &Params, max_width: u32) -> View {
        let margin = 50.0;
        let scale = (f64::from(max_width) / (p.width + 2.0 * margin)).min(1.0);
        let px = |len: f64| ((len + 2.0 * margin) * scale).ceil().clamp(1.0, 4096.0) as u16;
        View { scale, margin, width: px(p.width), height: px(p.height) }
    }

    fn px(&self, v: V2) -> (i64, i64) {
        let f = |c: f64| ((c + self.margin) * self.scale).round().clamp(-1e6, 1e6) as i64;
        (f(v.x), f(v.y))
    }
}

/// A picture as palette indices, row by row.
pub struct Canvas {
    pub view: View,
    pub pixels: Vec<u8>,
}

impl Canvas {
    pub fn new(view: View) -> Canvas {
        Canvas { view, pixels: vec![0; usize::from(view.width) * usize::from(view.height)] }
    }

    fn set(&mut self, (x, y): (i64, i64), colour: u8) {
        let (w, h) = (i64::from(self.view.width), i64::from(self.view.height));
        if (0..w).contains(&x) && (0..h).contains(&y) {
            self.pixels[(y * w + x) as usize] = colour;
        }
    }

    /// A straight line (Bresenham), clipped to the picture.
    fn line(&mut self, a: (i64, i64), b: (i64, i64), colour: u8) {
        let (dx, dy) = ((b.0 - a.0).abs(), -(b.1 - a.1).abs());
        if dx - dy > 8192 {
            return; // far off the picture: a runaway boid is not worth a long loop
        }
        let (sx, sy) = ((b.0 - a.0).signum(), (b.1 - a.1).signum());
        let (mut x, mut y, mut err) = (a.0, a.1, dx + dy);
        loop {
            self.set((x, y), colour);
            if (x, y) == b {
                return;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// A circle's outline (midpoint algorithm); a dot when under a pixel.
    fn circle(&mut self, c: (i64, i64), r: f64, colour: u8) {
        let r = r.round() as i64;
        if r < 1 {
            return self.set(c, colour);
        }
        let (mut x, mut y, mut err) = (r, 0i64, 1 - r);
        while x >= y {
            for (px, py) in [(x, y), (y, x), (-y, x), (-x, y), (-x, -y), (-y, -x), (y, -x), (x, -y)] {
                self.set((c.0 + px, c.1 + py), colour);
            }
            y += 1;
            if err < 0 {
                err += 2 * y + 1;
            } else {
                x -= 1;
                err += 2 * (y - x) + 1;
            }
        }
    }

    /// The field's border.
    pub fn field(&mut self, p: &Params) {
        let v = self.view;
        let corners = [V2::new(0.0, 0.0), V2::new(p.width, 0.0), V2::new(p.width, p.height), V2::new(0.0, p.height)];
        for k in 0..4 {
            self.line(v.px(corners[k]), v.px(corners[(k + 1) % 4]), BORDER);
        }
    }

    /// Each boid's past positions, oldest first, joined by lines.
    pub fn trails(&mut self, trails: &Trails) {
        let v = self.view;
        for i in 0..trails.boids {
            let mut last = None;
            for pos in trails.of(i) {
                let p = v.px(pos);
                if let Some(l) = last {
                    self.line(l, p, TRAIL);
                }
                last = Some(p);
            }
        }
    }

    /// The flock as the tutorial draws it, with each boid's sight circle if `sight` is set.
    pub fn flock(&mut self, f: &Flock, p: &Params, sight: bool) {
        let v = self.view;
        if sight {
            for &pos in &f.pos {
                self.circle(v.px(pos), p.sight * v.scale, SIGHT);
            }
        }
        for (&pos, &vel) in f.pos.iter().zip(&f.vel) {
            self.circle(v.px(pos), RADIUS * v.scale, BOID);
            self.line(v.px(pos), v.px(pos + vel * VELOCITY_SCALE), VELOCITY);
        }
    }

    /// Writes the picture as an indexed-colour PNG.
    pub fn save_png(&self, path: &Path) -> hdm::Result<()> {
        let io = |e: std::io::Error| hdm::Error::Io { path: path.to_path_buf(), source: e };
        let mut encoder = png::Encoder::new(
            BufWriter::new(File::create(path).map_err(io)?),
            self.view.width.into(),
            self.view.height.into(),
        );
        encoder.set_color(png::ColorType::Indexed);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_palette(PALETTE.concat());
        let png_error = |e: png::EncodingError| hdm::Error::Other(format!("{}: {e}", path.display()));
        let mut writer = encoder.write_header().map_err(png_error)?;
        writer.write_image_data(&self.pixels).map_err(png_error)?;
        writer.finish().map_err(png_error)
    }
}

/// An animated GIF being written, frame by frame, in the canvas palette.
pub struct Gif {
    encoder: gif::Encoder<BufWriter<File>>,
    delay_cs: u16,
    path: std::path::PathBuf,
}

impl Gif {
    /// A looping GIF at `path` of pictures of `view`'s size, each shown `delay_cs` hundredths of a second.
    pub fn create(path: &Path, view: View, delay_cs: u16) -> hdm::Result<Gif> {
        let file = File::create(path).map_err(|e| hdm::Error::Io { path: path.to_path_buf(), source: e })?;
        let mut encoder = gif::Encoder::new(BufWriter::new(file), view.width, view.height, &PALETTE.concat())
            .map_err(|e| gif_error(path, e))?;
        encoder.set_repeat(gif::Repeat::Infinite).map_err(|e| gif_error(path, e))?;
        Ok(Gif { encoder, delay_cs, path: path.to_path_buf() })
    }

    pub fn frame(&mut self, canvas: &Canvas) -> hdm::Result<()> {
        let frame = gif::Frame {
            width: canvas.view.width,
            height: canvas.view.height,
            delay: self.delay_cs,
            buffer: Cow::Borrowed(&canvas.pixels),
            ..gif::Frame::default()
        };
        self.encoder.write_frame(&frame).map_err(|e| gif_error(&self.path, e))
    }
}

fn gif_error(path: &Path, e: gif::EncodingError) -> hdm::Error {
    hdm::Error::Other(format!("{}: {e}", path.display()))
}

/// The last `len` positions of every boid, in a ring per boid.
pub struct Trails {
    len: usize,
    boids: usize,
    recorded: usize,
    ring: Vec<V2>,
}

impl Trails {
    pub fn new(boids: usize, len: usize) -> Trails {
        Trails { len, boids, recorded: 0, ring: vec![V2::ZERO; boids * len] }
    }

    pub fn record(&mut self, f: &Flock) {
        if self.len == 0 {
            return;
        }
        let slot = self.recorded % self.len;
        for (i, &p) in f.pos.iter().take(self.boids).enumerate() {
            self.ring[i * self.len + slot] = p;
        }
        self.recorded += 1;
    }

    /// Boid `i`'s recorded positions, oldest first.
    fn of(&self, i: usize) -> impl Iterator<Item = V2> + '_ {
        let n = self.recorded.min(self.len);
        let first = self.recorded - n;
        (first..self.recorded).map(move |k| self.ring[i * self.len + k % self.len])
    }
}
