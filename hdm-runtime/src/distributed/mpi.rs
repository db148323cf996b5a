//! [`Mpi`]: the processes of `mpirun`, through the `mpi` crate's bindings of the system's MPI.

use std::sync::{Arc, Once};

use mpi::datatype::{Partition, PartitionMut};
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::*;

use super::Exchange;
use crate::{Error, Result};

/// The processes started by `mpirun` (MPI's world), as an [`Exchange`].
///
/// [`Mpi::init`] initialises MPI with full thread support (the gradient exchange runs on its own
/// thread) and installs a panic hook that, after the usual message, aborts every process of the
/// job (`MPI_Abort`): a process that panics never leaves the others waiting in a collective. An
/// `Err` should end the job the same way: [`Mpi::exit_on_error`]. A process killed from outside
/// is seen by `mpirun`, which ends the others. MPI is finalised when the last clone of the `Arc`
/// is dropped.
pub struct Mpi {
    // Dropped after `world`: finalises MPI.
    world: World,
    _universe: mpi::environment::Universe,
}

/// The world communicator, shared with the exchange thread. Sound because MPI was initialised
/// with `MPI_THREAD_MULTIPLE` (checked in `init`).
struct World(SimpleCommunicator);
// SAFETY: see `World`.
unsafe impl Send for World {}
// SAFETY: see `World`.
unsafe impl Sync for World {}

impl Mpi {
    /// Initialises MPI (once per program). An `Err` when MPI was initialised already, or when the
    /// MPI library cannot give full thread support.
    pub fn init() -> Result<Arc<Mpi>> {
        let (universe, threading) = mpi::initialize_with_threading(mpi::Threading::Multiple)
            .ok_or_else(|| Error::Other("MPI: initialised already (Mpi::init is called once per program)".into()))?;
        if threading != mpi::Threading::Multiple {
            return Err(Error::Other(format!(
                "MPI: the library gives {threading:?} thread support; data-parallel training needs Multiple \
                 (Open MPI built with MPI_THREAD_MULTIPLE, as Debian's is)"
            )));
        }
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                previous(info);
                let world = SimpleCommunicator::world();
                eprintln!("process {} of {}: aborting the MPI job after a panic", world.rank(), world.size());
                world.abort(101);
            }));
        });
        let world = World(universe.world());
        Ok(Arc::new(Mpi { world, _universe: universe }))
    }

    /// `result`'s value, or (on an `Err`) the error printed with this process's number and the
    /// whole job ended (`MPI_Abort`), so that the other processes do not wait for this one.
    pub fn exit_on_error<V>(&self, result: Result<V>) -> V {
        match result {
            Ok(v) => v,
            Err(e) => self.abort(&e.to_string()),
        }
    }

    /// Waits until every process has come here.
    pub fn barrier(&self) {
        self.world.0.barrier();
    }
}

fn counts(c: &[i32]) -> &[mpi::Count] {
    c
}

impl Exchange for Mpi {
    fn rank(&self) -> usize {
        self.world.0.rank() as usize
    }
    fn ranks(&self) -> usize {
        self.world.0.size() as usize
    }
    fn all_to_all(&self, send: &[u8], sc: &[i32], sd: &[i32], recv: &mut [u8], rc: &[i32], rd: &[i32]) {
        let send = Partition::new(send, counts(sc), counts(sd));
        let mut recv = PartitionMut::new(recv, counts(rc), counts(rd));
        self.world.0.all_to_all_varcount_into(&send, &mut recv);
    }
    fn all_gather(&self, send: &[u8], recv: &mut [u8], c: &[i32], d: &[i32]) {
        let mut recv = PartitionMut::new(recv, counts(c), counts(d));
        self.world.0.all_gather_varcount_into(send, &mut recv);
    }
    fn abort(&self, message: &str) -> ! {
        eprintln!("error on process {} of {}: {message}", self.rank(), self.ranks());
        self.world.0.abort(1)
    }
}
