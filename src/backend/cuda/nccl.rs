//! NCCL as a [`Collective`] of the CUDA backend: the data-parallel all-reduce and broadcast
//! across GPUs, on each rank's own stream (the one its kernels run on, so no extra
//! synchronisation), in place on the device buffers.
//!
//! NCCL is loaded at run time (cudarc's dynamic loading), like the driver: [`nccl_available`]
//! says whether `libnccl` is present before anything calls into it.

use std::sync::{Arc, Mutex};

use cudarc::nccl::{Comm, ReduceOp};

use super::{CudaBackend, Device};
use crate::collective::Collective;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Whether `libnccl` can be loaded (`Err`: why not).
pub fn nccl_available() -> std::result::Result<(), String> {
    // SAFETY: only tries to dlopen the candidate library names; nothing is called.
    if unsafe { cudarc::nccl::sys::is_culib_present() } {
        Ok(())
    } else {
        Err("libnccl could not be loaded (install NCCL, e.g. pip nvidia-nccl-cu12, and put its lib/ on LD_LIBRARY_PATH)".into())
    }
}

/// One rank's NCCL communicator.
pub struct NcclCollective {
    comm: Mutex<CommCell>,
    rank: usize,
    size: usize,
}

/// A communicator is a handle the NCCL library lets any thread use, one call at a time (the
/// mutex above).
struct CommCell(Comm);

// SAFETY: see `CommCell`: NCCL communicators are not tied to the thread that created them, and
// the mutex serialises every call.
unsafe impl Send for CommCell {}

fn nccl_error(what: &str, e: impl std::fmt::Debug) -> Error {
    Error::Device(format!("NCCL {what}: {e:?}"))
}

impl NcclCollective {
    /// One communicator per backend, all in this process (`ncclCommInitAll`): rank r is
    /// `backends[r]`, whose device must differ from the others'.
    pub fn for_devices(backends: &[CudaBackend<Device>]) -> Result<Vec<NcclCollective>> {
        nccl_available().map_err(Error::Unsupported)?;
        let streams = backends
            .iter()
            .map(|b| Arc::clone(b.executor().stream()))
            .collect();
        let comms = Comm::from_devices(streams).map_err(|e| nccl_error("init", e))?;
        let size = comms.len();
        Ok(comms
            .into_iter()
            .enumerate()
            .map(|(rank, c)| NcclCollective {
                comm: Mutex::new(CommCell(c)),
                rank,
                size,
            })
            .collect())
    }

    fn with_comm<T>(&self, f: impl FnOnce(&Comm) -> Result<T>) -> Result<T> {
        let cell = self
            .comm
            .lock()
            .map_err(|_| Error::Device("NCCL communicator poisoned".into()))?;
        f(&cell.0)
    }
}

/// The device buffer of `t`, exclusive to it (copied first if a clone shares it).
fn exclusive<'a>(
    backend: &CudaBackend<Device>,
    t: &'a mut Tensor<CudaBackend<Device>>,
) -> Result<&'a mut cudarc::driver::CudaSlice<f32>> {
    backend.make_unique(t)?;
    Arc::get_mut(&mut t.data)
        .map(|b| b.raw_mut())
        .ok_or_else(|| Error::Device("tensor still shared after make_unique".into()))
}

impl Collective<CudaBackend<Device>> for NcclCollective {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.size
    }

    fn all_reduce_sum(
        &self,
        backend: &CudaBackend<Device>,
        t: &mut Tensor<CudaBackend<Device>>,
    ) -> Result<()> {
        let buf = exclusive(backend, t)?;
        self.with_comm(|c| {
            c.all_reduce_in_place(buf, &ReduceOp::Sum)
                .map(|_| ())
                .map_err(|e| nccl_error("all-reduce", e))
        })
    }

    fn broadcast(
        &self,
        backend: &CudaBackend<Device>,
        t: &mut Tensor<CudaBackend<Device>>,
        root: usize,
    ) -> Result<()> {
        let root = i32::try_from(root)
            .ok()
            .filter(|&r| (r as usize) < self.size)
            .ok_or_else(|| Error::Config(format!("broadcast from rank {root} of {}", self.size)))?;
        let buf = exclusive(backend, t)?;
        self.with_comm(|c| {
            c.broadcast_in_place(buf, root)
                .map(|_| ())
                .map_err(|e| nccl_error("broadcast", e))
        })
    }

    fn all_reduce_f64(&self, values: &mut [f64]) -> Result<()> {
        if values.is_empty() {
            return Ok(());
        }
        self.with_comm(|c| {
            let stream = c.stream();
            let mut dev = stream
                .clone_htod(&*values)
                .map_err(|e| Error::Device(format!("CUDA copy of metrics: {e}")))?;
            c.all_reduce_in_place(&mut dev, &ReduceOp::Sum)
                .map_err(|e| nccl_error("all-reduce of metrics", e))?;
            let host = stream
                .clone_dtoh(&dev)
                .map_err(|e| Error::Device(format!("CUDA copy of metrics: {e}")))?;
            values.copy_from_slice(&host);
            Ok(())
        })
    }
}
