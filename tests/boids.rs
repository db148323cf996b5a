//! The boid flock of issue 18: the rules on hand-made configurations and the grid search against
//! all pairs (the tests in `examples/boids/sim.rs`), the example's files and statistics, and the
//! live page's HTTP server, including every kind of bad request.
//!
//! The page itself is tested in a real browser by `tests/browser/boids_page.sh` (needs Debian's
//! `chromium` and Node; not part of `cargo test`).

#[allow(dead_code)] // its `main` and some helpers are not called here
#[path = "../examples/boids/main.rs"]
mod boids;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use boids::serve::{Server, MAX_CONNECTIONS, MAX_LIVE_BOIDS};
use boids::sim::{Params, Sim};
use clap::Parser;

fn cli(flags: &[&str]) -> boids::Cli {
    boids::Cli::try_parse_from(std::iter::once("boids").chain(flags.iter().copied())).unwrap()
}

/// Runs the example, returning its CSV rows (header first) split at commas.
fn run(flags: &[&str]) -> hdm::Result<Vec<Vec<String>>> {
    let mut csv = Vec::new();
    boids::run(&cli(flags), &mut csv)?;
    let text = String::from_utf8(csv).unwrap();
    Ok(text.lines().map(|l| l.split(',').map(str::to_owned).collect()).collect())
}

/// Palette indices of every frame of a GIF, and its size.
fn gif_frames(path: &std::path::Path) -> (u16, u16, Vec<Vec<u8>>) {
    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::Indexed);
    let mut decoder = options.read_info(std::fs::File::open(path).unwrap()).unwrap();
    let (w, h) = (decoder.width(), decoder.height());
    let mut frames = Vec::new();
    while let Some(frame) = decoder.read_next_frame().unwrap() {
        assert_eq!((frame.width, frame.height, frame.left, frame.top), (w, h, 0, 0));
        frames.push(frame.buffer.to_vec());
    }
    (w, h, frames)
}

fn png_indices(path: &std::path::Path) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Indexed);
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

#[test]
fn the_example_writes_a_gif_a_picture_with_trails_and_statistics() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();
    let rows = run(&["--steps", "40", "--frames", "10", "--trail", "20", "--out", dir]).unwrap();
    assert_eq!(rows[0], ["step", "mean_speed", "polarisation", "groups"]);
    assert_eq!(rows.len(), 42);
    // Row k is the state after k steps of the tutorial's flock (seed 1).
    let mut sim = cli(&[]).sim(Params::default());
    for (k, row) in rows[1..].iter().enumerate() {
        assert_eq!(row[0], k.to_string());
        let s = sim.stats();
        assert_eq!(row[1..], [format!("{:.6}", s.mean_speed), format!("{:.6}", s.polarisation), s.groups.to_string()]);
        sim.step(boids::sim::Search::AllPairs);
    }
    // Frames after steps 0, 4, ..., 40, each 1000 + 2 * 50 wide and 500 + 2 * 50 high (scaled to
    // 1000 pixels wide), each different from the one before: the flock moves.
    let (w, h, frames) = gif_frames(&out.path().join("flock.gif"));
    assert_eq!((w, h, frames.len()), (1000, 546, 11));
    assert!(frames.windows(2).all(|f| f[0] != f[1]));
    // The final picture is the last frame with the trails drawn under the boids: every pixel
    // either equals the frame's or is a trail pixel (2) on the frame's background (0), and there
    // are trail pixels.
    let (pw, ph, picture) = png_indices(&out.path().join("final.png"));
    assert_eq!((pw, ph), (1000, 546));
    let last = frames.last().unwrap();
    let mut trail = 0;
    for (&p, &f) in picture.iter().zip(last) {
        if p != f {
            assert_eq!((p, f), (2, 0));
            trail += 1;
        }
    }
    assert!(trail > 100, "{trail} trail pixels");
    // Boids (3), their velocities (4) and the field's border (1) are drawn.
    for colour in [1, 3, 4] {
        assert!(last.contains(&colour), "colour {colour}");
    }
}

#[test]
fn a_scattered_flock_gathers_into_a_few_groups() {
    let out = tempfile::tempdir().unwrap();
    let flags = ["--start", "scattered", "--boids", "200", "--sight", "50", "--steps", "1500", "--frames", "2"];
    let rows = run(&[&flags[..], &["--out", out.path().to_str().unwrap()]].concat()).unwrap();
    let groups = |row: &Vec<String>| row[3].parse::<usize>().unwrap();
    let polarisation = |row: &Vec<String>| row[2].parse::<f64>().unwrap();
    let (first, last) = (&rows[1], &rows[1501]);
    // Random headings, 42 groups; then 4 groups (seed 1).
    assert!(polarisation(first) < 0.05, "{first:?}");
    assert_eq!((groups(first), groups(last)), (42, 4));
}

#[test]
fn the_searches_give_the_same_run() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let flags = ["--boids", "300", "--steps", "100", "--frames", "5", "--search"];
    let all = run(&[&flags[..], &["all-pairs", "--out", a.path().to_str().unwrap()]].concat()).unwrap();
    let grid = run(&[&flags[..], &["grid", "--out", b.path().to_str().unwrap()]].concat()).unwrap();
    assert_eq!(all, grid);
    for file in ["flock.gif", "final.png"] {
        assert_eq!(std::fs::read(a.path().join(file)).unwrap(), std::fs::read(b.path().join(file)).unwrap());
    }
}

#[test]
fn bad_flags_are_errors_naming_the_flag() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();
    for (flags, expected) in [
        (&["--sight=-1"][..], "--sight"),
        (&["--avoid", "NaN"], "--avoid"),
        (&["--width", "0"], "--width"),
        (&["--height", "inf"], "--height"),
        (&["--boids", "20000000"], "--boids"),
        (&["--boids", "1000000", "--trail", "100"], "--trail"),
        (&["--image-width", "5"], "--image-width"),
    ] {
        let e = run(&[flags, &["--out", dir]].concat()).unwrap_err().to_string();
        assert!(e.contains(expected), "{flags:?}: {e}");
    }
    // An output folder that is a file: the error names it.
    let file = out.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    let e = run(&["--steps", "1", "--out", file.to_str().unwrap()]).unwrap_err().to_string();
    assert!(e.contains("a-file"), "{e}");
}

/// Sends `raw` as it is and returns the status code and body of the answer.
fn send(addr: SocketAddr, raw: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream.write_all(raw).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status in {answer:?}"));
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    send(addr, format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
}

fn post(addr: SocketAddr, path: &str, body: &str) -> (u16, String) {
    send(addr, format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes())
}

fn start(sim: Sim) -> Server {
    Server::start(TcpListener::bind("127.0.0.1:0").unwrap(), sim).unwrap()
}

/// A number of the state's JSON: `"key":value`.
fn field(json: &str, key: &str) -> f64 {
    let at = json.find(&format!("\"{key}\":")).unwrap_or_else(|| panic!("no {key} in {json}")) + key.len() + 3;
    json[at..].split([',', '}']).next().unwrap().parse().unwrap()
}

fn boids_in(json: &str) -> Vec<f64> {
    let list = json.split_once("\"boids\":[").unwrap().1.split_once(']').unwrap().0;
    list.split(',').map(|v| v.parse().unwrap()).collect()
}

#[test]
fn the_server_runs_the_simulation_and_takes_the_pages_requests() {
    let server = start(Sim::new(30, Params::default(), 1));
    let addr = server.addr;
    let (status, page) = get(addr, "/");
    assert_eq!(status, 200);
    assert!(page.contains("<canvas") && page.contains("id=\"sight\"") && page.contains("id=\"add\""));
    let (status, state) = get(addr, "/state");
    assert_eq!(status, 200);
    assert_eq!((field(&state, "width"), field(&state, "height"), field(&state, "sight")), (1000.0, 500.0, 100.0));
    let boids = boids_in(&state);
    assert_eq!(boids.len(), 4 * 30);
    assert!(boids.chunks(4).all(|b| b[..2].iter().all(|v| (-200.0..1200.0).contains(v))), "{boids:?}");
    // The simulation steps on its own.
    let before = field(&state, "step");
    std::thread::sleep(Duration::from_millis(200));
    assert!(field(&get(addr, "/state?t=1").1, "step") > before);
    // The sliders and the button.
    assert_eq!(post(addr, "/params", "sight=150"), (200, "{\"sight\":150,\"avoid\":20}".into()));
    assert_eq!(post(addr, "/params", "avoid=12.5&sight=80"), (200, "{\"sight\":80,\"avoid\":12.5}".into()));
    let state = get(addr, "/state").1;
    assert_eq!((field(&state, "sight"), field(&state, "avoid")), (80.0, 12.5));
    assert_eq!(post(addr, "/add", ""), (200, "{\"boids\":31}".into()));
    assert_eq!(boids_in(&get(addr, "/state").1).len(), 4 * 31);
    assert_eq!(server.progress().1, 31);
    server.stop();
}

#[test]
fn bad_requests_get_http_errors_and_the_server_goes_on() {
    let server = start(Sim::new(30, Params::default(), 1));
    let addr = server.addr;
    let long_header = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(9000));
    let cases: Vec<(&[u8], u16)> = vec![
        (b"GET /nowhere HTTP/1.1\r\n\r\n", 404),
        (b"GET /params HTTP/1.1\r\n\r\n", 405),
        (b"POST /state HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405),
        (b"DELETE / HTTP/1.1\r\n\r\n", 405),
        (b"hello\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\n\r\n", 400),
        (b"GET nowhere HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n\xff\xfe\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n", 400), // the head never ends
        (b"", 400),
        (long_header.as_bytes(), 431),
        (b"POST /params HTTP/1.1\r\nContent-Length: 99999\r\n\r\n", 413),
        (b"POST /params HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
        (b"POST /params HTTP/1.1\r\nContent-Length: 20\r\n\r\nsight=1", 400), // body cut short
        (b"POST /params HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nsight\r\n0\r\n\r\n", 501),
    ];
    for (raw, expected) in cases {
        assert_eq!(send(addr, raw).0, expected, "{:?}", String::from_utf8_lossy(raw));
    }
    for body in [
        "",
        "sight",
        "sight=",
        "sight=abc",
        "sight=-1",
        "sight=1001",
        "sight=NaN",
        "avoid=inf",
        "speed=3",
        "sight=1&&x",
    ] {
        let (status, message) = post(addr, "/params", body);
        assert_eq!(status, 400, "{body:?}: {message}");
    }
    // None of it changed the simulation, which still runs and answers.
    let state = get(addr, "/state").1;
    assert_eq!((field(&state, "sight"), field(&state, "avoid")), (100.0, 20.0));
    assert_eq!(boids_in(&state).len(), 4 * 30);
    server.stop();
}

#[test]
fn a_full_flock_and_too_many_connections_are_refused() {
    // Sight 0: nobody sees anybody, so 20,000 boids step cheaply.
    let server = start(Sim::new(MAX_LIVE_BOIDS, Params { sight: 0.0, avoid: 0.0, ..Params::default() }, 1));
    let addr = server.addr;
    assert_eq!(post(addr, "/add", "").0, 409);
    // Idle connections (no request sent) up to the limit; the next is answered 503 at once.
    let idle: Vec<TcpStream> = (0..MAX_CONNECTIONS).map(|_| TcpStream::connect(addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(get(addr, "/state").0, 503);
    drop(idle);
    // Once they are gone, requests are served again.
    let mut status = 0;
    for _ in 0..100 {
        status = get(addr, "/").0;
        if status == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(status, 200);
    server.stop();
}
