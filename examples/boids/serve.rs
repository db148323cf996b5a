//! The live page: the simulation runs here, in Rust, at 60 steps per second, and a small HTTP
//! server (the standard library's `TcpListener`, one thread per connection) lets a browser draw
//! it and change it.
//!
//! | request | answer |
//! |---|---|
//! | `GET /` | the page (`page.html`) |
//! | `GET /state` | `{"step", "width", "height", "sight", "avoid", "boids": [x, y, vx, vy, ...]}` |
//! | `POST /params` with `sight=R&avoid=D` (either, form-encoded) | the new `{"sight", "avoid"}` |
//! | `POST /add` | one more boid: `{"boids": n}` |
//!
//! Anything else gets an HTTP error and the server goes on: 400 for a request it cannot read or
//! a value out of range (sight and avoidance distance in `[0, 1000]`), 404 for another path, 405
//! for another method, 409 when the flock is full ([`MAX_LIVE_BOIDS`]), 413 for a body over 4
//! KiB, 431 for headers over 8 KiB, 501 for a chunked body, 503 when [`MAX_CONNECTIONS`] are
//! open. A client that stalls is dropped after [`TIMEOUT`].

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::sim::{Search, Sim};

const PAGE: &str = include_str!("page.html");

/// The most boids the page's button adds up to.
pub const MAX_LIVE_BOIDS: usize = 20_000;
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a connection may take to send its request or read the answer.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// Connections beyond [`MAX_CONNECTIONS`] that are still answered 503; more are dropped.
const MAX_REFUSING: usize = 16;
const MAX_HEAD: usize = 8 * 1024;
const MAX_BODY: usize = 4 * 1024;
/// The largest sight radius or avoidance distance the page may set.
const MAX_DISTANCE: f64 = 1000.0;

/// Serves `sim` at `addr` until the process ends.
pub fn run(addr: &str, sim: Sim) -> hdm::Result<()> {
    let listener = TcpListener::bind(addr).map_err(|e| hdm::Error::Other(format!("cannot listen at {addr}: {e}")))?;
    let server = Server::start(listener, sim)?;
    eprintln!("the flock is live at http://{}/ (Ctrl-C stops)", server.addr);
    server.wait();
    Ok(())
}

/// A running server: its simulation thread and its accepting thread.
pub struct Server {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

struct Shared {
    sim: Mutex<Sim>,
    stop: AtomicBool,
    open: AtomicUsize,
}

impl Shared {
    fn sim(&self) -> MutexGuard<'_, Sim> {
        // A panic while holding the lock cannot leave the flock half-updated in a way that matters
        // to a drawing; keep serving.
        self.sim.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Server {
    /// Starts stepping `sim` and serving `listener` on threads of their own.
    pub fn start(listener: TcpListener, sim: Sim) -> hdm::Result<Server> {
        let addr = listener.local_addr().map_err(|e| hdm::Error::Other(format!("the listening address: {e}")))?;
        let shared = Arc::new(Shared { sim: Mutex::new(sim), stop: AtomicBool::new(false), open: AtomicUsize::new(0) });
        let stepper = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                let tick = Duration::from_secs(1) / 60;
                let mut next = Instant::now();
                while !shared.stop.load(Ordering::Relaxed) {
                    shared.sim().step(Search::Grid);
                    next += tick;
                    let now = Instant::now();
                    match next.checked_duration_since(now) {
                        Some(wait) => std::thread::sleep(wait),
                        None => next = now, // slower than 60 per second: do not try to catch up
                    }
                }
            })
        };
        let acceptor = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if shared.stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let shared = shared.clone();
                    let open = shared.open.fetch_add(1, Ordering::SeqCst);
                    if open >= MAX_CONNECTIONS + MAX_REFUSING {
                        shared.open.fetch_sub(1, Ordering::SeqCst);
                        continue; // dropped: not even a thread to say so
                    }
                    std::thread::spawn(move || {
                        let _ = if open < MAX_CONNECTIONS { serve_one(&stream, &shared) } else { refuse(&stream) };
                        shared.open.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            })
        };
        Ok(Server { addr, shared, threads: vec![stepper, acceptor] })
    }

    /// Blocks until the server stops (it stops only through [`stop`](Self::stop)).
    pub fn wait(mut self) {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    /// Stops both threads (connections being served finish on their own).
    pub fn stop(self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr); // wakes the accepting thread
        self.wait();
    }

    /// The simulation's step count and flock size now.
    pub fn progress(&self) -> (u64, usize) {
        let sim = self.shared.sim();
        (sim.steps, sim.flock.len())
    }
}

struct Response {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    allow: Option<&'static str>,
}

impl Response {
    fn ok(content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response { status: 200, content_type, body: body.into(), allow: None }
    }

    fn error(status: u16, message: &str) -> Response {
        Response { status, content_type: "text/plain; charset=utf-8", body: format!("{message}\n").into(), allow: None }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

fn answer(mut stream: &TcpStream, r: &Response) -> std::io::Result<()> {
    stream.set_write_timeout(Some(TIMEOUT))?;
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len()
    );
    if let Some(allow) = r.allow {
        head.push_str(&format!("Allow: {allow}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(&r.body)?;
    stream.flush()
}

fn serve_one(stream: &TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_read_timeout(Some(TIMEOUT))?;
    let response = match read_request(stream) {
        Ok(request) => route(&request, shared),
        Err(response) => response,
    };
    answer(stream, &response)?;
    close(stream)
}

/// Answers 503 to a connection over the limit, after a short wait for its request.
fn refuse(stream: &TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    let _ = (&*stream).read(&mut [0u8; 1024]);
    answer(stream, &Response::error(503, "too many connections"))?;
    close(stream)
}

/// Ends the answer and reads what the client still sends (a body never read, say) for a moment,
/// so that closing with unread data does not reset the connection before the client reads the
/// answer.
fn close(mut stream: &TcpStream) -> std::io::Result<()> {
    stream.shutdown(std::net::Shutdown::Write)?;
    stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut sink = [0u8; 4096];
    let mut left: usize = 64 * 1024;
    while left > 0 {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
    Ok(())
}

/// A request as read: method, path without its query, body.
struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

/// Reads one request, or the error response to send instead.
fn read_request(mut stream: &TcpStream) -> Result<Request, Response> {
    let deadline = Instant::now() + TIMEOUT;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    let head_end = loop {
        if let Some(k) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            if k > MAX_HEAD {
                return Err(Response::error(431, "the request's head is over 8 KiB"));
            }
            break k;
        }
        if buf.len() > MAX_HEAD + 4 {
            return Err(Response::error(431, "the request's head is over 8 KiB"));
        }
        if Instant::now() > deadline {
            return Err(Response::error(400, "the request took too long"));
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Err(Response::error(400, "the request ended before its head did")),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => return Err(Response::error(400, "the request could not be read")),
        }
    };
    let bad = |m: &str| Response::error(400, m);
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| bad("the request's head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let mut parts = lines.next().unwrap_or("").split(' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None) if !m.is_empty() && t.starts_with('/') => (m, t, v),
        _ => return Err(bad("the request line should read METHOD /path HTTP/1.1")),
    };
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(bad("only HTTP/1.0 and HTTP/1.1 are spoken here"));
    }
    let mut length = 0;
    for line in lines {
        let (name, value) = line.split_once(':').ok_or_else(|| bad("a header line without a colon"))?;
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().map_err(|_| bad("Content-Length is not a number"))?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(Response::error(501, "bodies must come with a Content-Length, not a Transfer-Encoding"));
        }
    }
    if length > MAX_BODY {
        return Err(Response::error(413, "bodies are at most 4 KiB"));
    }
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        if Instant::now() > deadline {
            return Err(bad("the request took too long"));
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return Err(bad("the body is shorter than its Content-Length")),
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    body.truncate(length);
    let path = target.split('?').next().unwrap_or(target).to_string();
    Ok(Request { method: method.to_string(), path, body })
}

fn route(request: &Request, shared: &Shared) -> Response {
    let allowed = match request.path.as_str() {
        "/" | "/index.html" | "/state" => "GET",
        "/params" | "/add" => "POST",
        _ => return Response::error(404, &format!("no page at {}", request.path)),
    };
    if request.method != allowed {
        return Response {
            allow: Some(allowed),
            ..Response::error(405, &format!("{} takes {allowed}, not {}", request.path, request.method))
        };
    }
    match request.path.as_str() {
        "/state" => Response::ok("application/json", state_json(&shared.sim())),
        "/params" => match parse_params(&request.body) {
            Ok((sight, avoid)) => {
                let mut sim = shared.sim();
                sim.params.sight = sight.unwrap_or(sim.params.sight);
                sim.params.avoid = avoid.unwrap_or(sim.params.avoid);
                let body = format!("{{\"sight\":{},\"avoid\":{}}}", sim.params.sight, sim.params.avoid);
                Response::ok("application/json", body)
            }
            Err(message) => Response::error(400, &message),
        },
        "/add" => {
            let mut sim = shared.sim();
            if sim.flock.len() >= MAX_LIVE_BOIDS {
                return Response::error(409, &format!("the flock is full ({MAX_LIVE_BOIDS} boids)"));
            }
            sim.add_boid();
            Response::ok("application/json", format!("{{\"boids\":{}}}", sim.flock.len()))
        }
        _ => Response::ok("text/html; charset=utf-8", PAGE),
    }
}

/// `sight=R&avoid=D` (either may be missing), each finite and in `[0, MAX_DISTANCE]`.
fn parse_params(body: &[u8]) -> Result<(Option<f64>, Option<f64>), String> {
    let body = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8".to_string())?;
    let (mut sight, mut avoid) = (None, None);
    for pair in body.trim().split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').ok_or_else(|| format!("`{pair}` is not key=value"))?;
        let v: f64 = value.parse().map_err(|_| format!("{key}: `{value}` is not a number"))?;
        if !(0.0..=MAX_DISTANCE).contains(&v) {
            return Err(format!("{key}: {value} is not in [0, {MAX_DISTANCE}]"));
        }
        match key {
            "sight" => sight = Some(v),
            "avoid" => avoid = Some(v),
            _ => return Err(format!("unknown parameter `{key}` (sight and avoid are known)")),
        }
    }
    if sight.is_none() && avoid.is_none() {
        return Err("nothing to set: send sight=R, avoid=D or both".into());
    }
    Ok((sight, avoid))
}

/// The state the page draws, positions to a tenth and velocities to a hundredth.
fn state_json(sim: &Sim) -> String {
    use std::fmt::Write as _;
    let p = &sim.params;
    let mut s = String::with_capacity(64 + sim.flock.len() * 28);
    let _ = write!(
        s,
        "{{\"step\":{},\"width\":{},\"height\":{},\"sight\":{},\"avoid\":{},\"boids\":[",
        sim.steps, p.width, p.height, p.sight, p.avoid
    );
    for (i, (pos, vel)) in sim.flock.pos.iter().zip(&sim.flock.vel).enumerate() {
        if i > 0 {
            s.push(',');
        }
        for (v, digits) in [(pos.x, 1), (pos.y, 1), (vel.x, 2), (vel.y, 2)] {
            // Finite by construction (the zero-vector guard, the walls); null, not invalid JSON.
            let _ = if v.is_finite() { write!(s, "{v:.digits$},") } else { write!(s, "null,") };
        }
        s.pop();
    }
    s.push_str("]}");
    s
}
