//! Craig Reynolds' boids as in the tutorial: cohesion, alignment and separation as unit vectors
//! weighted 1, 0.7 and 5, the acceleration normalised to 0.1, soft walls, speed clamped to 5,
//! all accelerations computed from the current state before any boid moves.
//!
//! Neighbours are found either by comparing every pair ([`Search::AllPairs`], the tutorial's
//! way) or through a uniform grid of cells as wide as the sight radius ([`Search::Grid`]). Both
//! visit each boid's neighbours in increasing index order, so they give the same bits.
//!
//! One deliberate difference from the JavaScript: normalising a zero vector (two boids on one
//! spot, a boid already flying at the mean velocity of those it sees) divides by zero there and
//! gives NaN, which then spreads through the flock; here a zero vector stays zero.

use hdm::Rng;

/// A 2-D vector.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct V2 {
    pub x: f64,
    pub y: f64,
}

impl V2 {
    pub const ZERO: V2 = V2 { x: 0.0, y: 0.0 };

    pub const fn new(x: f64, y: f64) -> Self {
        V2 { x, y }
    }

    pub fn norm(self) -> f64 {
        self.x.hypot(self.y)
    }

    /// `|self|^2`: "strictly within `r`" is `(b - a).norm2() < r * r` in every search.
    pub fn norm2(self) -> f64 {
        self.x * self.x + self.y * self.y
    }

    /// The unit vector along `self`; the zero vector stays zero (the tutorial's JavaScript
    /// divides by zero there).
    pub fn unit(self) -> V2 {
        let l = self.norm();
        if l == 0.0 {
            V2::ZERO
        } else {
            V2::new(self.x / l, self.y / l)
        }
    }
}

impl std::ops::Add for V2 {
    type Output = V2;
    fn add(self, o: V2) -> V2 {
        V2::new(self.x + o.x, self.y + o.y)
    }
}

impl std::ops::Sub for V2 {
    type Output = V2;
    fn sub(self, o: V2) -> V2 {
        V2::new(self.x - o.x, self.y - o.y)
    }
}

impl std::ops::Div<f64> for V2 {
    type Output = V2;
    fn div(self, k: f64) -> V2 {
        V2::new(self.x / k, self.y / k)
    }
}

impl std::ops::Mul<f64> for V2 {
    type Output = V2;
    fn mul(self, k: f64) -> V2 {
        V2::new(self.x * k, self.y * k)
    }
}

/// The tutorial's constants, the two radii adjustable (its sliders).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Params {
    /// Boids strictly closer than this are seen (100).
    pub sight: f64,
    /// Seen boids strictly closer than this are avoided (20).
    pub avoid: f64,
    /// The field, `[0, width] x [0, height]` (1000 x 500).
    pub width: f64,
    pub height: f64,
    pub cohesion: f64,
    pub alignment: f64,
    pub separation: f64,
    /// Length of the steering acceleration (0.1).
    pub max_accel: f64,
    /// Acceleration per axis back into the field (1).
    pub wall: f64,
    /// Speed limit (5).
    pub max_speed: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            sight: 100.0,
            avoid: 20.0,
            width: 1000.0,
            height: 500.0,
            cohesion: 1.0,
            alignment: 0.7,
            separation: 5.0,
            max_accel: 0.1,
            wall: 1.0,
            max_speed: 5.0,
        }
    }
}

/// A flock: positions and velocities.
#[derive(Clone, Debug, PartialEq)]
pub struct Flock {
    pub pos: Vec<V2>,
    pub vel: Vec<V2>,
}

impl Flock {
    /// `n` boids uniformly in the middle half of the field, velocities uniform in `[0, 1)^2`.
    pub fn random(n: usize, p: &Params, rng: &mut Rng) -> Flock {
        let mut f = Flock { pos: Vec::with_capacity(n), vel: Vec::with_capacity(n) };
        for _ in 0..n {
            f.add_random(p, rng);
        }
        f
    }

    /// One more boid, drawn as in [`random`](Self::random).
    pub fn add_random(&mut self, p: &Params, rng: &mut Rng) {
        let x = p.width / 4.0 + rng.uniform() * p.width / 2.0;
        let y = p.height / 4.0 + rng.uniform() * p.height / 2.0;
        self.pos.push(V2::new(x, y));
        self.vel.push(V2::new(rng.uniform(), rng.uniform()));
    }

    /// `n` boids uniformly over the whole field, flying in uniformly random directions at speeds
    /// uniform in `[0, max_speed)`: a start with no order at all (not the tutorial's).
    pub fn scattered(n: usize, p: &Params, rng: &mut Rng) -> Flock {
        let mut f = Flock { pos: Vec::with_capacity(n), vel: Vec::with_capacity(n) };
        for _ in 0..n {
            f.pos.push(V2::new(rng.uniform() * p.width, rng.uniform() * p.height));
            let (angle, speed) = (rng.uniform() * std::f64::consts::TAU, rng.uniform() * p.max_speed);
            f.vel.push(V2::new(angle.cos(), angle.sin()) * speed);
        }
        f
    }

    pub fn len(&self) -> usize {
        self.pos.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pos.is_empty()
    }
}

/// What a boid sums over the boids it sees, in increasing index order.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Sums {
    seen: usize,
    pos: V2,
    vel: V2,
    close: usize,
    close_pos: V2,
}

impl Sums {
    #[inline]
    fn add(&mut self, me: V2, other: V2, vel: V2, p: &Params) {
        let d2 = (other - me).norm2();
        if d2 < p.sight * p.sight {
            self.seen += 1;
            self.pos = self.pos + other;
            self.vel = self.vel + vel;
            if d2 < p.avoid * p.avoid {
                self.close += 1;
                self.close_pos = self.close_pos + other;
            }
        }
    }

    /// The acceleration of a boid at `me` moving at `vel`.
    fn accel(&self, me: V2, vel: V2, p: &Params) -> V2 {
        let mut a = V2::ZERO;
        if self.seen > 0 {
            let n = self.seen as f64;
            let cohesion = (self.pos / n - me).unit();
            let alignment = (self.vel / n - vel).unit();
            let mut steer = cohesion * p.cohesion + alignment * p.alignment;
            if self.close > 0 {
                let away = (me - self.close_pos / self.close as f64).unit();
                steer = steer + away * p.separation;
            }
            a = steer.unit() * p.max_accel;
        }
        a + wall_push(me, p)
    }
}

/// The soft walls: `wall` per axis back towards the field for a boid outside it.
pub fn wall_push(me: V2, p: &Params) -> V2 {
    let axis = |v: f64, hi: f64| {
        if v < 0.0 {
            p.wall
        } else if v > hi {
            -p.wall
        } else {
            0.0
        }
    };
    V2::new(axis(me.x, p.width), axis(me.y, p.height))
}

/// Every boid's acceleration from the current state, comparing every pair (the tutorial's way).
pub fn accelerations_all_pairs(f: &Flock, p: &Params, out: &mut Vec<V2>) {
    out.clear();
    for (i, (&me, &vel)) in f.pos.iter().zip(&f.vel).enumerate() {
        let mut s = Sums::default();
        for (j, (&other, &v)) in f.pos.iter().zip(&f.vel).enumerate() {
            if j != i {
                s.add(me, other, v, p);
            }
        }
        out.push(s.accel(me, vel, p));
    }
}

/// Moves every boid by its acceleration: velocity += acceleration, clamped to `max_speed`, then
/// position += the new velocity.
pub fn integrate(f: &mut Flock, acc: &[V2], p: &Params) {
    for ((pos, vel), &a) in f.pos.iter_mut().zip(&mut f.vel).zip(acc) {
        let mut v = *vel + a;
        let speed = v.norm();
        if speed > p.max_speed {
            v = v * (p.max_speed / speed);
        }
        *vel = v;
        *pos = *pos + v;
    }
}

/// A uniform grid of square cells `cell` wide over the flock's bounding box, each cell's boids in
/// increasing index order (a counting sort).
#[derive(Default)]
pub struct Grid {
    cell: f64,
    origin: V2,
    cols: usize,
    rows: usize,
    /// `start[c]..start[c + 1]` indexes `boids` for cell `c`.
    start: Vec<usize>,
    boids: Vec<usize>,
}

impl Grid {
    fn cell_of(&self, v: V2) -> (usize, usize) {
        let cx = ((v.x - self.origin.x) / self.cell) as usize;
        let cy = ((v.y - self.origin.y) / self.cell) as usize;
        (cx.min(self.cols - 1), cy.min(self.rows - 1))
    }

    /// The number of cells.
    fn cells(&self) -> usize {
        self.cols * self.rows
    }

    /// The boids of cell `c`, in increasing index order.
    fn boids_in(&self, c: usize) -> &[usize] {
        &self.boids[self.start[c]..self.start[c + 1]]
    }

    /// The cells of the 3 x 3 block around cell `c` (fewer at the edges), in increasing order.
    fn block(&self, c: usize) -> impl Iterator<Item = usize> + '_ {
        let (cx, cy) = (c % self.cols, c / self.cols);
        (cy.saturating_sub(1)..(cy + 2).min(self.rows))
            .flat_map(move |ny| (cx.saturating_sub(1)..(cx + 2).min(self.cols)).map(move |nx| ny * self.cols + nx))
    }

    /// Sorts `pos` into cells at least `sight` wide, so that every boid a boid sees lies in its
    /// cell or one of the eight around it.
    pub fn build(&mut self, pos: &[V2], sight: f64) {
        let cell = sight.max(f64::MIN_POSITIVE);
        let (mut lo, mut hi) = (V2::new(f64::INFINITY, f64::INFINITY), V2::new(f64::NEG_INFINITY, f64::NEG_INFINITY));
        for v in pos {
            lo = V2::new(lo.x.min(v.x), lo.y.min(v.y));
            hi = V2::new(hi.x.max(v.x), hi.y.max(v.y));
        }
        self.cell = cell;
        self.origin = lo;
        // At most about one cell per boid along each axis: a huge field with few boids, or a
        // tiny sight radius, must not make a huge grid.
        let limit = (pos.len().max(1) as f64).sqrt().ceil() * 4.0;
        let span =
            |a: f64, b: f64| if pos.is_empty() { 1 } else { (((b - a) / cell).floor() + 1.0).min(limit) as usize };
        self.cols = span(lo.x, hi.x).max(1);
        self.rows = span(lo.y, hi.y).max(1);
        if self.cols as f64 >= limit || self.rows as f64 >= limit {
            // Cells wider than the sight radius keep the 3 x 3 rule true.
            self.cell = ((hi.x - lo.x) / (self.cols - 1).max(1) as f64)
                .max((hi.y - lo.y) / (self.rows - 1).max(1) as f64)
                .max(cell);
        }
        let n = self.cols * self.rows;
        self.start.clear();
        self.start.resize(n + 1, 0);
        for &v in pos {
            let (cx, cy) = self.cell_of(v);
            self.start[cy * self.cols + cx + 1] += 1;
        }
        for c in 0..n {
            self.start[c + 1] += self.start[c];
        }
        let mut next = self.start.clone();
        self.boids.clear();
        self.boids.resize(pos.len(), 0);
        for (i, &v) in pos.iter().enumerate() {
            let (cx, cy) = self.cell_of(v);
            let c = cy * self.cols + cx;
            self.boids[next[c]] = i;
            next[c] += 1;
        }
    }
}

/// Every boid's acceleration from the current state, through a [`Grid`], on the threads of
/// hdm's default pool: the same bits as [`accelerations_all_pairs`] on any number of threads,
/// since each boid visits the boids of its 3 x 3 block of cells in increasing index order.
pub fn accelerations_grid(f: &Flock, p: &Params, grid: &mut Grid, out: &mut Vec<V2>) {
    out.clear();
    out.resize(f.len(), V2::ZERO);
    grid.build(&f.pos, p.sight);
    let grid = &*grid;
    let size = |c: usize| grid.boids_in(c).len();
    // The work of each cell: its boids times its candidates; contiguous runs of cells of about
    // equal work, one per thread.
    let cost: Vec<usize> = (0..grid.cells()).map(|c| size(c) * grid.block(c).map(size).sum::<usize>()).collect();
    let total: usize = cost.iter().sum();
    let pool = hdm::gemm::default_pool::<f64>();
    let parts = pool.threads().min(1 + total / 100_000).max(1);
    let mut bounds = vec![0];
    let mut acc = 0;
    for (c, &w) in cost.iter().enumerate() {
        acc += w;
        if bounds.len() < parts && acc * parts >= total * bounds.len() {
            bounds.push(c + 1);
        }
    }
    while bounds.len() <= parts {
        bounds.push(grid.cells());
    }
    let results: Vec<std::sync::Mutex<Vec<(usize, V2)>>> = (0..parts).map(|_| Default::default()).collect();
    pool.run_parts(parts, |k, _| {
        let mut found = Vec::new();
        let mut soa = Candidates::default();
        for c in bounds[k]..bounds[k + 1] {
            let mine = grid.boids_in(c);
            if mine.is_empty() {
                continue;
            }
            soa.gather(grid.block(c).map(|n| grid.boids_in(n)), f);
            for chunk in mine.chunks(LANES) {
                for (&i, s) in chunk.iter().zip(soa.sums(chunk, f, p)) {
                    found.push((i, s.accel(f.pos[i], f.vel[i], p)));
                }
            }
        }
        *results[k].lock().unwrap_or_else(std::sync::PoisonError::into_inner) = found;
    });
    for part in results {
        for (i, a) in part.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner) {
            out[i] = a;
        }
    }
}

/// How neighbours are found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Search {
    /// Every pair of boids, as the tutorial does: O(n^2), one thread.
    AllPairs,
    /// A [`Grid`] of cells as wide as the sight radius, on hdm's pool: the same bits.
    Grid,
}

/// A running simulation: the flock, its rules, the random stream that adds boids, and the
/// buffers one step reuses.
pub struct Sim {
    pub flock: Flock,
    pub params: Params,
    /// Steps taken so far.
    pub steps: u64,
    rng: Rng,
    grid: Grid,
    acc: Vec<V2>,
}

impl Sim {
    /// `n` boids drawn by [`Flock::random`] from `seed`.
    pub fn new(n: usize, params: Params, seed: u64) -> Sim {
        let mut rng = Rng::new(seed);
        let flock = Flock::random(n, &params, &mut rng);
        Sim { flock, params, steps: 0, rng, grid: Grid::default(), acc: Vec::new() }
    }

    /// A simulation starting from `flock`; boids added later are drawn from `seed`.
    pub fn with_flock(flock: Flock, params: Params, seed: u64) -> Sim {
        Sim { flock, ..Sim::new(0, params, seed) }
    }

    /// One step: every acceleration from the current state, then every boid moves.
    pub fn step(&mut self, search: Search) {
        match search {
            Search::AllPairs => accelerations_all_pairs(&self.flock, &self.params, &mut self.acc),
            Search::Grid => accelerations_grid(&self.flock, &self.params, &mut self.grid, &mut self.acc),
        }
        integrate(&mut self.flock, &self.acc, &self.params);
        self.steps += 1;
    }

    /// One more boid, drawn from the simulation's random stream.
    pub fn add_boid(&mut self) {
        self.flock.add_random(&self.params, &mut self.rng);
    }

    /// The [`Stats`] of the current state.
    pub fn stats(&mut self) -> Stats {
        stats(&self.flock, &self.params, &mut self.grid)
    }
}

/// Boids whose sums one pass over a cell's candidates makes at once.
const LANES: usize = 8;

/// A cell's candidates, in increasing index order, as separate coordinates.
#[derive(Default)]
struct Candidates {
    index: Vec<usize>,
    x: Vec<f64>,
    y: Vec<f64>,
    vx: Vec<f64>,
    vy: Vec<f64>,
}

impl Candidates {
    /// The boids of `cells`, merged in increasing index order, with their coordinates.
    fn gather<'a>(&mut self, cells: impl IntoIterator<Item = &'a [usize]>, f: &Flock) {
        self.index.clear();
        cells.into_iter().for_each(|c| self.index.extend_from_slice(c));
        self.index.sort_unstable();
        let index = &self.index;
        self.x.clear();
        self.x.extend(index.iter().map(|&j| f.pos[j].x));
        self.y.clear();
        self.y.extend(index.iter().map(|&j| f.pos[j].y));
        self.vx.clear();
        self.vx.extend(index.iter().map(|&j| f.vel[j].x));
        self.vy.clear();
        self.vy.extend(index.iter().map(|&j| f.vel[j].y));
    }

    /// The [`Sums`] of up to [`LANES`] boids over these candidates. Each lane adds in candidate
    /// order, as [`Sums::add`] does, with `0.0` in place of a value it does not see: sums start
    /// at `+0.0` and round to nearest, so they never become `-0.0`, and adding `+0.0` leaves them
    /// unchanged: the same bits as the branching loop, without its unpredictable branches.
    ///
    /// The lanes vectorise: with AVX2 when the CPU has it (chosen at run time; Rust never fuses
    /// a multiply and an add on its own, so both paths give the same bits), else with SSE2.
    fn sums(&self, boids: &[usize], f: &Flock, p: &Params) -> [Sums; LANES] {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2.
            return unsafe { self.sums_avx2(boids, f, p) };
        }
        self.sums_lanes(boids, f, p)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn sums_avx2(&self, boids: &[usize], f: &Flock, p: &Params) -> [Sums; LANES] {
        self.sums_lanes(boids, f, p)
    }

    #[inline(always)]
    fn sums_lanes(&self, boids: &[usize], f: &Flock, p: &Params) -> [Sums; LANES] {
        let (s2, a2) = (p.sight * p.sight, p.avoid * p.avoid);
        // Unused lanes sit at NaN, which sees nothing.
        let (mut mx, mut my, mut me) = ([f64::NAN; LANES], [f64::NAN; LANES], [usize::MAX; LANES]);
        for (l, &i) in boids.iter().enumerate() {
            (mx[l], my[l], me[l]) = (f.pos[i].x, f.pos[i].y, i);
        }
        let mut seen = [0usize; LANES];
        let mut close = [0usize; LANES];
        let (mut px, mut py, mut vx, mut vy, mut cx, mut cy) =
            ([0.0f64; LANES], [0.0; LANES], [0.0; LANES], [0.0; LANES], [0.0; LANES], [0.0; LANES]);
        for k in 0..self.index.len() {
            let (j, x, y, u, v) = (self.index[k], self.x[k], self.y[k], self.vx[k], self.vy[k]);
            for l in 0..LANES {
                let (dx, dy) = (x - mx[l], y - my[l]);
                let d2 = dx * dx + dy * dy;
                let sees = (d2 < s2) & (j != me[l]);
                let near = sees & (d2 < a2);
                let pick = |on: bool, value: f64| if on { value } else { 0.0 };
                seen[l] += usize::from(sees);
                px[l] += pick(sees, x);
                py[l] += pick(sees, y);
                vx[l] += pick(sees, u);
                vy[l] += pick(sees, v);
                close[l] += usize::from(near);
                cx[l] += pick(near, x);
                cy[l] += pick(near, y);
            }
        }
        std::array::from_fn(|l| Sums {
            seen: seen[l],
            pos: V2::new(px[l], py[l]),
            vel: V2::new(vx[l], vy[l]),
            close: close[l],
            close_pos: V2::new(cx[l], cy[l]),
        })
    }
}

/// What the flocking looks like in numbers, for one state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    /// Mean speed.
    pub mean_speed: f64,
    /// `|mean unit velocity|`: 1 when all fly the same way, near 0 for random headings.
    pub polarisation: f64,
    /// Connected components of the graph linking boids strictly within sight of each other.
    pub groups: usize,
}

/// The [`Stats`] of a flock (groups found through `grid`).
pub fn stats(f: &Flock, p: &Params, grid: &mut Grid) -> Stats {
    let n = f.len().max(1) as f64;
    let mean_speed = f.vel.iter().map(|v| v.norm()).sum::<f64>() / n;
    let heading = f.vel.iter().fold(V2::ZERO, |s, v| s + v.unit()) / n;
    Stats { mean_speed, polarisation: heading.norm(), groups: groups(f, p, grid) }
}

/// The number of groups: boids linked when strictly within sight of each other, counted by
/// union-find over the pairs in each 3 x 3 block of cells.
pub fn groups(f: &Flock, p: &Params, grid: &mut Grid) -> usize {
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut parent: Vec<usize> = (0..f.len()).collect();
    let mut count = f.len();
    grid.build(&f.pos, p.sight);
    for c in 0..grid.cells() {
        for &i in grid.boids_in(c) {
            for j in grid.block(c).flat_map(|n| grid.boids_in(n)).copied() {
                if j > i && (f.pos[j] - f.pos[i]).norm2() < p.sight * p.sight {
                    let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                    if a != b {
                        parent[a.max(b)] = a.min(b);
                        count -= 1;
                    }
                }
            }
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flock(boids: &[(f64, f64, f64, f64)]) -> Flock {
        Flock {
            pos: boids.iter().map(|b| V2::new(b.0, b.1)).collect(),
            vel: boids.iter().map(|b| V2::new(b.2, b.3)).collect(),
        }
    }

    fn accel(f: &Flock) -> Vec<V2> {
        let mut a = Vec::new();
        accelerations_all_pairs(f, &Params::default(), &mut a);
        a
    }

    #[test]
    fn a_lone_boid_does_not_steer() {
        assert_eq!(accel(&flock(&[(500.0, 250.0, 1.0, 0.0)])), vec![V2::ZERO]);
        // 100 apart is not strictly within sight.
        let a = accel(&flock(&[(500.0, 250.0, 0.0, 0.0), (600.0, 250.0, 0.0, 0.0)]));
        assert_eq!(a, vec![V2::ZERO, V2::ZERO]);
    }

    #[test]
    fn cohesion_alone() {
        // Same velocities (alignment is the zero vector), 50 apart (no separation): each steers
        // straight at the other, at 0.1.
        let a = accel(&flock(&[(500.0, 250.0, 1.0, 1.0), (550.0, 250.0, 1.0, 1.0)]));
        assert_eq!(a, vec![V2::new(0.1, 0.0), V2::new(-0.1, 0.0)]);
    }

    #[test]
    fn alignment_and_cohesion() {
        // Boid 0 at rest sees boid 1, 30 to its right (+x) moving at (0, 2): cohesion (1, 0),
        // alignment 0.7 * (0, 1); their sum (1, 0.7) has length sqrt(1.49).
        let a = accel(&flock(&[(500.0, 250.0, 0.0, 0.0), (530.0, 250.0, 0.0, 2.0)]));
        let l = 1.49f64.sqrt();
        assert!((a[0].x - 0.1 / l).abs() < 1e-15 && (a[0].y - 0.07 / l).abs() < 1e-15, "{:?}", a[0]);
    }

    #[test]
    fn every_boid_moves_by_an_acceleration_from_the_state_before_the_step() {
        // Boid 0 at rest, boid 1 30 to its right moving at (0, 2). From the state before the
        // step: a0 = 0.1 (1, 0.7) / sqrt(1.49) (cohesion +x, alignment +y); a1 = 0.1 (-1, -0.7) /
        // sqrt(1.49) (cohesion -x; alignment: mean velocity (0, 0) minus its own, -y). Had boid 0
        // moved first, boid 1 would see it moving and 30 - 0.08 away, and steer differently.
        let l = 1.49f64.sqrt();
        let (a0, a1) = (V2::new(0.1 / l, 0.07 / l), V2::new(-0.1 / l, -0.07 / l));
        let f = flock(&[(500.0, 250.0, 0.0, 0.0), (530.0, 250.0, 0.0, 2.0)]);
        let mut sim = Sim::with_flock(f.clone(), Params::default(), 0);
        let mut all = Sim::with_flock(f, Params::default(), 0);
        sim.step(Search::Grid);
        all.step(Search::AllPairs);
        let close = |a: V2, b: V2| (a - b).norm() < 1e-15;
        let v1 = V2::new(0.0, 2.0) + a1;
        assert!(close(sim.flock.vel[0], a0) && close(sim.flock.vel[1], v1), "{:?}", sim.flock.vel);
        assert!(close(sim.flock.pos[0], V2::new(500.0, 250.0) + a0), "{:?}", sim.flock.pos);
        assert!(close(sim.flock.pos[1], V2::new(530.0, 250.0) + v1), "{:?}", sim.flock.pos);
        assert_eq!(sim.flock, all.flock);
        assert_eq!(sim.steps, 1);
    }

    #[test]
    fn separation_outweighs_cohesion() {
        // 10 apart, same velocity: cohesion (1, 0) + separation 5 * (-1, 0) = (-4, 0): away.
        let a = accel(&flock(&[(500.0, 250.0, 1.0, 0.0), (510.0, 250.0, 1.0, 0.0)]));
        assert_eq!(a, vec![V2::new(-0.1, 0.0), V2::new(0.1, 0.0)]);
    }

    #[test]
    fn walls_push_back_per_axis() {
        let p = Params::default();
        assert_eq!(wall_push(V2::new(-1.0, 600.0), &p), V2::new(1.0, -1.0));
        assert_eq!(wall_push(V2::new(1000.0, 0.0), &p), V2::ZERO);
        assert_eq!(accel(&flock(&[(1001.0, 250.0, 0.0, 0.0)])), vec![V2::new(-1.0, 0.0)]);
    }

    #[test]
    fn speed_is_clamped_after_the_acceleration() {
        let p = Params::default();
        let mut f = flock(&[(0.0, 0.0, 3.0, 4.0), (100.0, 0.0, 1.0, 0.0)]);
        integrate(&mut f, &[V2::new(3.0, 4.0), V2::new(0.5, 0.0)], &p);
        assert_eq!(f.vel, vec![V2::new(3.0, 4.0), V2::new(1.5, 0.0)]);
        assert_eq!(f.pos, vec![V2::new(3.0, 4.0), V2::new(101.5, 0.0)]);
    }

    #[test]
    fn the_grid_gives_the_same_bits_as_all_pairs() {
        for (n, seed, sight, avoid) in
            [(30, 1, 100.0, 20.0), (300, 2, 100.0, 20.0), (500, 3, 37.5, 30.0), (200, 4, 0.5, 0.1)]
        {
            let p = Params { sight, avoid, ..Params::default() };
            let mut rng = Rng::new(seed);
            let mut a = Flock::random(n, &p, &mut rng);
            let mut b = a.clone();
            let (mut acc_a, mut acc_b, mut grid) = (Vec::new(), Vec::new(), Grid::default());
            for step in 0..60 {
                accelerations_all_pairs(&a, &p, &mut acc_a);
                accelerations_grid(&b, &p, &mut grid, &mut acc_b);
                assert_eq!(acc_a, acc_b, "n {n}, step {step}");
                integrate(&mut a, &acc_a, &p);
                integrate(&mut b, &acc_b, &p);
            }
            assert_eq!(a, b);
        }
    }

    #[test]
    fn statistics_by_hand() {
        let p = Params::default();
        // Two boids 50 apart flying +x at speeds 1 and 3; a third 300 away flying -x at speed 2:
        // mean speed 2, unit velocities (1,0), (1,0), (-1,0): polarisation 1/3; two groups.
        let f = flock(&[(100.0, 100.0, 1.0, 0.0), (150.0, 100.0, 3.0, 0.0), (450.0, 100.0, -2.0, 0.0)]);
        let s = stats(&f, &p, &mut Grid::default());
        assert_eq!(s.mean_speed, 2.0);
        assert!((s.polarisation - 1.0 / 3.0).abs() < 1e-15);
        assert_eq!(s.groups, 2);
        // A chain 90 apart is one group, though its ends are 180 apart; exactly 100 apart links not.
        let chain =
            flock(&[(0.0, 0.0, 1.0, 0.0), (90.0, 0.0, 1.0, 0.0), (180.0, 0.0, 1.0, 0.0), (280.0, 0.0, 1.0, 0.0)]);
        assert_eq!(groups(&chain, &p, &mut Grid::default()), 2);
    }

    #[test]
    fn groups_through_the_grid_match_all_pairs() {
        for (n, seed, sight) in [(40, 5, 100.0), (400, 6, 30.0), (300, 7, 250.0)] {
            let p = Params { sight, ..Params::default() };
            let f = Flock::random(n, &p, &mut Rng::new(seed));
            // Flood fill over all pairs.
            let mut label = vec![usize::MAX; n];
            let mut count = 0;
            for start in 0..n {
                if label[start] != usize::MAX {
                    continue;
                }
                let mut stack = vec![start];
                label[start] = count;
                while let Some(i) = stack.pop() {
                    let me = f.pos[i];
                    for (j, (l, &other)) in label.iter_mut().zip(&f.pos).enumerate() {
                        if *l == usize::MAX && (other - me).norm2() < sight * sight {
                            *l = count;
                            stack.push(j);
                        }
                    }
                }
                count += 1;
            }
            assert_eq!(groups(&f, &p, &mut Grid::default()), count, "n {n}, sight {sight}");
        }
    }

    #[test]
    fn the_grid_split_over_threads_gives_the_same_bits() {
        // Dense enough that the work is split (2,000 boids in the middle of the field).
        let p = Params::default();
        let mut f = Flock::random(2000, &p, &mut Rng::new(9));
        let (mut acc_a, mut acc_b, mut grid) = (Vec::new(), Vec::new(), Grid::default());
        for threads in [2, 1, 3] {
            hdm::set_num_threads(threads);
            accelerations_all_pairs(&f, &p, &mut acc_a);
            accelerations_grid(&f, &p, &mut grid, &mut acc_b);
            assert_eq!(acc_a, acc_b, "{threads} threads");
            integrate(&mut f, &acc_a, &p);
        }
        hdm::set_num_threads(0);
    }

    #[test]
    fn the_lanes_give_the_same_sums_on_every_path() {
        // A cell's sums three ways: the branching loop, the lanes as compiled for the baseline
        // (SSE2), and the lanes as dispatched (AVX2 where the CPU has it).
        let p = Params { sight: 60.0, avoid: 25.0, ..Params::default() };
        let f = Flock::random(300, &p, &mut Rng::new(11));
        let everyone: Vec<usize> = (0..f.len()).collect();
        let mut soa = Candidates::default();
        soa.gather([&everyone[..]], &f);
        for chunk in everyone.chunks(LANES - 3) {
            let expected: Vec<Sums> = chunk
                .iter()
                .map(|&i| {
                    let mut s = Sums::default();
                    for j in (0..f.len()).filter(|&j| j != i) {
                        s.add(f.pos[i], f.pos[j], f.vel[j], &p);
                    }
                    s
                })
                .collect();
            assert!(expected.iter().any(|s| s.close > 0));
            assert_eq!(soa.sums_lanes(chunk, &f, &p)[..chunk.len()], expected[..]);
            assert_eq!(soa.sums(chunk, &f, &p)[..chunk.len()], expected[..]);
        }
    }

    #[test]
    fn zero_vectors_stay_zero() {
        assert_eq!(V2::ZERO.unit(), V2::ZERO);
        // Two boids on the same spot with the same velocity: every vector to normalise is zero.
        let a = accel(&flock(&[(500.0, 250.0, 1.0, 0.0), (500.0, 250.0, 1.0, 0.0)]));
        assert_eq!(a, vec![V2::ZERO, V2::ZERO]);
    }
}
