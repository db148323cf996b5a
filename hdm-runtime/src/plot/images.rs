//! Grids of small grayscale images (samples of a generator, say) as PNG, and their animation
//! over a run as GIF.

use std::path::Path;

use image::{GrayImage, Luma};
use ndarray::ArrayView2;

use crate::{Error, Float, Result};

/// A grid of images: `images` holds one `height x width` image per row (row-major, values in
/// [0, 1], clamped), laid out `cols` per line, with `gap` pixels of black between them.
pub fn image_grid<T: Float>(
    images: ArrayView2<'_, T>,
    (height, width): (usize, usize),
    cols: usize,
    gap: usize,
) -> Result<GrayImage> {
    let (n, len) = images.dim();
    if len != height * width || cols == 0 {
        return Err(Error::Shape {
            what: "images of a grid".into(),
            expected: format!("rows of {height} x {width} = {} values, at least one column", height * width),
            got: format!("rows of {len} values, {cols} columns"),
        });
    }
    let rows = n.div_ceil(cols);
    let (gw, gh) = (cols * (width + gap) + gap, rows * (height + gap) + gap);
    let mut grid = GrayImage::new(gw as u32, gh as u32);
    for (k, image) in images.rows().into_iter().enumerate() {
        let (top, left) = (gap + (k / cols) * (height + gap), gap + (k % cols) * (width + gap));
        for (i, &v) in image.iter().enumerate() {
            let v = v.to_f64();
            let level = if v.is_nan() { 0.0 } else { (v.clamp(0.0, 1.0) * 255.0).round() };
            grid.put_pixel((left + i % width) as u32, (top + i / width) as u32, Luma([level as u8]));
        }
    }
    Ok(grid)
}

/// Images side by side, top-aligned, on black: the frames of an animation showing several grids.
pub fn side_by_side(images: &[GrayImage]) -> GrayImage {
    let width = images.iter().map(|i| i.width()).sum();
    let height = images.iter().map(|i| i.height()).max().unwrap_or(0);
    let mut out = GrayImage::new(width, height);
    let mut left = 0;
    for image in images {
        image::imageops::replace(&mut out, image, left, 0);
        left += i64::from(image.width());
    }
    out
}

/// Writes an image as PNG.
pub fn save_png(image: &GrayImage, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    image.save_with_format(path, image::ImageFormat::Png).map_err(|e| image_error(path, e))
}

/// Reads a PNG (or any format `image` knows) as grayscale.
pub fn load_gray(path: impl AsRef<Path>) -> Result<GrayImage> {
    let path = path.as_ref();
    Ok(image::open(path).map_err(|e| image_error(path, e))?.into_luma8())
}

/// Writes `frames` (of one size) as an animated GIF that loops, showing each for `delay_ms`.
pub fn save_gif(frames: &[GrayImage], delay_ms: u32, path: impl AsRef<Path>) -> Result<()> {
    use image::codecs::gif::{GifEncoder, Repeat};
    let path = path.as_ref();
    if let Some(f) = frames.iter().find(|f| f.dimensions() != frames[0].dimensions()) {
        return Err(Error::Other(format!(
            "{}: frames of different sizes ({:?} and {:?})",
            path.display(),
            frames[0].dimensions(),
            f.dimensions()
        )));
    }
    let file = std::fs::File::create(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    let mut encoder = GifEncoder::new_with_speed(std::io::BufWriter::new(file), 10);
    encoder.set_repeat(Repeat::Infinite).map_err(|e| image_error(path, e))?;
    for f in frames {
        let rgba = image::DynamicImage::ImageLuma8(f.clone()).into_rgba8();
        let frame = image::Frame::from_parts(rgba, 0, 0, image::Delay::from_numer_denom_ms(delay_ms, 1));
        encoder.encode_frame(frame).map_err(|e| image_error(path, e))?;
    }
    Ok(())
}

fn image_error(path: &Path, e: image::ImageError) -> Error {
    match e {
        image::ImageError::IoError(source) => Error::Io { path: path.to_path_buf(), source },
        other => Error::Format { path: path.to_path_buf(), problem: other.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grid_places_each_image_and_round_trips_through_png_and_gif() {
        // Three 2x3 images, 2 per line, gap 1: 2 * (3 + 1) + 1 = 9 wide, 2 * (2 + 1) + 1 = 7 high.
        let images = ndarray::Array2::from_shape_fn((3, 6), |(k, i)| (k * 6 + i) as f32 / 17.0);
        let grid = image_grid(images.view(), (2, 3), 2, 1).unwrap();
        assert_eq!(grid.dimensions(), (9, 7));
        assert_eq!(grid.get_pixel(0, 0)[0], 0);
        // Image 1, pixel (row 1, col 2) = value 11/17, at x = 1 + 4 + 2, y = 1 + 1.
        assert_eq!(grid.get_pixel(7, 2)[0], (11.0f64 / 17.0 * 255.0).round() as u8);
        // Image 2 starts the second line.
        assert_eq!(grid.get_pixel(1, 4)[0], (12.0f64 / 17.0 * 255.0).round() as u8);
        let dir = tempfile::tempdir().unwrap();
        save_png(&grid, dir.path().join("g.png")).unwrap();
        assert_eq!(load_gray(dir.path().join("g.png")).unwrap(), grid);
        save_gif(&[grid.clone(), grid], 100, dir.path().join("g.gif")).unwrap();
        assert!(std::fs::read(dir.path().join("g.gif")).unwrap().starts_with(b"GIF89a"));
        assert!(image_grid(images.view(), (2, 2), 2, 1).is_err());
    }
}
