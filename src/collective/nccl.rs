//! NCCL as a [`Collective`] of the CUDA backend (`CudaBackend<Device>`): the data-parallel
//! all-reduce and broadcast across GPUs, in place on the device buffers.
//!
//! Each rank's communicator runs on a stream of its own, next to the compute stream its
//! kernels run on, so that a started bucket all-reduce ([`Collective::start_all_reduce_sum_all`])
//! overlaps with the backward of the layers below. Events order the two streams: a collective
//! waits for the compute work issued before it, and the compute stream waits for the
//! collectives before it uses their results (at once for the blocking calls, at
//! [`Collective::wait_started`] for started ones).
//!
//! NCCL is loaded at run time (cudarc's dynamic loading), like the driver: [`nccl_available`]
//! says whether `libnccl` is present before anything calls into it.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cudarc::driver::CudaStream;
use cudarc::nccl::{Comm, Id, ReduceOp};

use super::{Collective, Started};
use crate::backend::cuda::{CudaBackend, Device};
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
    /// The rank's compute stream (its backend's), which the collectives are ordered against.
    compute: Arc<CudaStream>,
    /// The stream the communicator runs on.
    comm_stream: Arc<CudaStream>,
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

fn stream_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Device(format!("CUDA {what}: {e}"))
}

impl NcclCollective {
    /// One communicator per backend, all in this process (`ncclCommInitAll`): rank r is
    /// `backends[r]`, whose device must differ from the others'.
    pub fn for_devices(backends: &[CudaBackend<Device>]) -> Result<Vec<NcclCollective>> {
        nccl_available().map_err(Error::Unsupported)?;
        let computes: Vec<Arc<CudaStream>> = backends
            .iter()
            .map(|b| Arc::clone(b.executor().stream()))
            .collect();
        let comm_streams = computes
            .iter()
            .map(|s| {
                s.fork()
                    .map_err(|e| stream_error("a communication stream", e))
            })
            .collect::<Result<Vec<_>>>()?;
        let comms = Comm::from_devices(comm_streams.clone()).map_err(|e| nccl_error("init", e))?;
        let size = comms.len();
        Ok(comms
            .into_iter()
            .zip(computes.into_iter().zip(comm_streams))
            .enumerate()
            .map(|(rank, (c, (compute, comm_stream)))| NcclCollective {
                comm: Mutex::new(CommCell(c)),
                compute,
                comm_stream,
                rank,
                size,
            })
            .collect())
    }

    /// This process's rank of a group spanning processes (and machines): global rank `rank`
    /// of `world` on `backend`'s GPU. Rendezvous through the file `init` on a file system all
    /// ranks share: rank 0 writes NCCL's unique id there (atomically), the others wait for it
    /// (up to `timeout`). Start every rank with a fresh `init` path.
    pub fn from_rank(
        backend: &CudaBackend<Device>,
        rank: usize,
        world: usize,
        init: &Path,
        timeout: Duration,
    ) -> Result<NcclCollective> {
        nccl_available().map_err(Error::Unsupported)?;
        if rank >= world {
            return Err(Error::Config(format!(
                "--rank {rank} of --world-size {world}"
            )));
        }
        let id = if rank == 0 {
            let id = Id::new().map_err(|e| nccl_error("unique id", e))?;
            let bytes: Vec<u8> = id.internal().iter().map(|&c| c as u8).collect();
            crate::checkpoint::write_atomic(init, &bytes)?;
            id
        } else {
            let start = Instant::now();
            loop {
                match std::fs::read(init) {
                    Ok(bytes) if bytes.len() == 128 => {
                        let mut internal = [0 as std::ffi::c_char; 128];
                        for (d, b) in internal.iter_mut().zip(bytes) {
                            *d = b as std::ffi::c_char;
                        }
                        break Id::uninit(internal);
                    }
                    _ if start.elapsed() > timeout => {
                        return Err(Error::Config(format!(
                            "{}: no NCCL id from rank 0 after {} s",
                            init.display(),
                            timeout.as_secs()
                        )))
                    }
                    _ => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        };
        let compute = Arc::clone(backend.executor().stream());
        let comm_stream = compute
            .fork()
            .map_err(|e| stream_error("a communication stream", e))?;
        let comm = Comm::from_rank(Arc::clone(&comm_stream), rank, world, id)
            .map_err(|e| nccl_error("init", e))?;
        Ok(NcclCollective {
            comm: Mutex::new(CommCell(comm)),
            compute,
            comm_stream,
            rank,
            size: world,
        })
    }

    /// Makes the communication stream wait for the compute work issued so far (the kernels
    /// that wrote the buffers about to be reduced).
    fn after_compute(&self) -> Result<()> {
        self.comm_stream
            .join(&self.compute)
            .map_err(|e| stream_error("ordering a collective after compute", e))
    }

    /// Makes the compute stream wait for the collectives issued so far.
    fn before_compute(&self) -> Result<()> {
        self.compute
            .join(&self.comm_stream)
            .map_err(|e| stream_error("ordering compute after a collective", e))
    }

    /// Enqueues one in-place sum per tensor, as one NCCL group, on the communication stream
    /// (after the compute work issued so far). Does not wait for it.
    fn enqueue_sums(
        &self,
        backend: &CudaBackend<Device>,
        ts: &mut [&mut Tensor<CudaBackend<Device>>],
    ) -> Result<()> {
        // Copy-on-write first: nothing may allocate between the group's start and end.
        for t in ts.iter_mut() {
            backend.make_unique(t)?;
        }
        self.after_compute()?;
        self.with_comm(|c| {
            cudarc::nccl::result::group_start().map_err(|e| nccl_error("group start", e))?;
            let mut failed = None;
            for t in ts.iter_mut() {
                let Some(buf) = Arc::get_mut(&mut t.data).map(|b| b.raw_mut()) else {
                    failed = Some(Error::Device("tensor shared inside an NCCL group".into()));
                    break;
                };
                if let Err(e) = c.all_reduce_in_place(buf, &ReduceOp::Sum) {
                    failed = Some(nccl_error("all-reduce", e));
                    break;
                }
            }
            // The group is always closed, also after a failed call.
            let end = cudarc::nccl::result::group_end().map_err(|e| nccl_error("group end", e));
            match failed {
                Some(e) => Err(e),
                None => end.map(|_| ()),
            }
        })
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
        self.after_compute()?;
        self.with_comm(|c| {
            c.all_reduce_in_place(buf, &ReduceOp::Sum)
                .map(|_| ())
                .map_err(|e| nccl_error("all-reduce", e))
        })?;
        self.before_compute()
    }

    fn all_reduce_sum_all(
        &self,
        backend: &CudaBackend<Device>,
        ts: &mut [&mut Tensor<CudaBackend<Device>>],
    ) -> Result<()> {
        self.enqueue_sums(backend, ts)?;
        self.before_compute()
    }

    fn start_all_reduce_sum_all(
        &self,
        backend: &CudaBackend<Device>,
        ts: &mut [&mut Tensor<CudaBackend<Device>>],
    ) -> Result<Started> {
        // The compute stream goes on at once; `wait_started` joins the two streams again.
        self.enqueue_sums(backend, ts)?;
        Ok(Started::InPlace)
    }

    fn wait_started(&self, _backend: &CudaBackend<Device>) -> Result<()> {
        self.before_compute()
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
        self.after_compute()?;
        self.with_comm(|c| {
            c.broadcast_in_place(buf, root)
                .map(|_| ())
                .map_err(|e| nccl_error("broadcast", e))
        })?;
        self.before_compute()
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
