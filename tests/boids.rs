//! The boid flock's rules (issue 18), on hand-made configurations, and the grid search against
//! all pairs. The simulation lives with the `boids` example (work in progress: the example itself,
//! its GIF, statistics and live page come next).

#[allow(dead_code)]
#[path = "../examples/boids/sim.rs"]
mod sim;
