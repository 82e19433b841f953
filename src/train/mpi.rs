//! Processes of an MPI job as a [`ProcessGroup`] (the `mpi` feature): `mpirun -n R
//! med-crossvit train … --distributed mpi`, or `srun` under Slurm.
//!
//! Sums are `MPI_Allreduce` over `f64` buffers (in chunks that fit MPI's `int` counts);
//! gathers are `MPI_Allgatherv` of bytes. All calls are made from the thread that initialized
//! MPI. A rank that fails calls [`MpiGroup::abort`], which ends every rank of the job.

use mpi::Count;
use mpi::collective::SystemOperation;
use mpi::datatype::PartitionMut;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives};

use super::parallel::ProcessGroup;
use crate::run::{Error, RunError};

/// The world of an MPI job. MPI is finalized when it is dropped.
pub struct MpiGroup {
    world: SimpleCommunicator,
    // Dropped last: finalizes MPI.
    _universe: Universe,
}

impl std::fmt::Debug for MpiGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpiGroup")
            .field("rank", &self.rank())
            .field("size", &self.size())
            .finish()
    }
}

impl MpiGroup {
    /// Initializes MPI (once per process).
    ///
    /// # Errors
    ///
    /// [`RunError::Distributed`] when MPI was already initialized.
    pub fn init() -> Result<Self, Error> {
        let universe = mpi::initialize().ok_or_else(|| RunError::Distributed {
            message: "MPI is already initialized in this process".into(),
        })?;
        Ok(Self {
            world: universe.world(),
            _universe: universe,
        })
    }

    /// Ends every rank of the job with exit status `code` (`MPI_Abort`): a rank that fails
    /// while the others wait in a collective ends the job instead of leaving it hanging.
    pub fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}

/// The largest count of one MPI call.
const CHUNK: usize = 1 << 28;

impl ProcessGroup for MpiGroup {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn size(&self) -> usize {
        self.world.size() as usize
    }

    fn sum(&self, values: &mut [f64]) -> Result<(), Error> {
        let mut received = vec![0.0f64; values.len().min(CHUNK)];
        for chunk in values.chunks_mut(CHUNK) {
            let out = &mut received[..chunk.len()];
            self.world
                .all_reduce_into(&chunk[..], &mut out[..], SystemOperation::sum());
            chunk.copy_from_slice(out);
        }
        Ok(())
    }

    fn all_gather(&self, bytes: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
        let too_large = |n: usize| RunError::Distributed {
            message: format!("{n} bytes to gather: more than MPI can send in one call"),
        };
        let mine = Count::try_from(bytes.len()).map_err(|_| too_large(bytes.len()))?;
        let mut counts = vec![0 as Count; self.size()];
        self.world.all_gather_into(&mine, &mut counts[..]);
        let total: usize = counts.iter().map(|&c| c as usize).sum();
        if Count::try_from(total).is_err() {
            return Err(too_large(total).into());
        }
        let displs: Vec<Count> = counts
            .iter()
            .scan(0, |at, &c| {
                let d = *at;
                *at += c;
                Some(d)
            })
            .collect();
        let mut all = vec![0u8; total];
        {
            let mut partition = PartitionMut::new(&mut all[..], counts.clone(), &displs[..]);
            self.world.all_gather_varcount_into(bytes, &mut partition);
        }
        Ok(counts
            .iter()
            .zip(&displs)
            .map(|(&c, &d)| all[d as usize..(d + c) as usize].to_vec())
            .collect())
    }
}
