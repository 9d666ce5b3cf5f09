//! The emulator's memory counters ([`LaunchCounters`] per launch, [`SiteCounters`] per access
//! site): what an [`super::emulator::Emulator`] with counters on records for every launch
//! (docs/emulator.md, "Memory counters"). Plain data, re-exported by `emulator`.

/// Which memory an access site reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MemSpace {
    /// Global memory: an argument buffer of the launch.
    Global,
    /// Shared memory of the block (static `__shared__` or dynamic).
    Shared,
}

/// What an access site does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccessOp {
    /// A load.
    Load,
    /// A store.
    Store,
    /// An atomic read-modify-write (`atomicAdd`, ...; the emulation of a float `atomicAdd` is
    /// a compare-and-swap, one per attempt).
    Atomic,
}

/// The memory counters of one static access site (one instruction of the instrumented kernel
/// code) over one launch. A warp request is the k-th execution of the site by the lanes of one
/// warp (lanes that skip the site do not take part: a partial request).
#[derive(Clone, Debug, PartialEq)]
pub struct SiteCounters {
    /// The site's number in its launch: sites ordered by instruction address, so the same
    /// build gives the same numbers.
    pub index: usize,
    /// The instruction address of the access in this process.
    pub pc: u64,
    /// `pc` minus the load address of the binary: `addr2line -f -i -e BINARY 0xOFFSET` names
    /// the function (the counted copy of the kernel, `pixelrnn_emu_counted_<kernel>`) and,
    /// in a build with debug line tables, the source line.
    pub module_offset: u64,
    /// Global or shared memory.
    pub space: MemSpace,
    /// Load, store or atomic.
    pub op: AccessOp,
    /// The widest access of one lane in bytes (4 for an fp32, 16 for a `float4`).
    pub access_bytes: u32,
    /// Warp requests.
    pub requests: u64,
    /// Lane accesses over all requests (32 per request for a full warp).
    pub lane_accesses: u64,
    /// Bytes requested: every lane's access size, summed.
    pub bytes: u64,
    /// Distinct bytes of each request (lanes reading the same bytes count once), summed.
    pub unique_bytes: u64,
    /// Global memory: distinct 32-byte sectors of each request, summed over requests (0 for
    /// shared memory).
    pub sectors: u64,
    /// Shared memory: each request's bank-conflict degree, summed: the most distinct 4-byte
    /// words that one of the 32 banks (of 4 bytes) must serve; lanes on the same word are a
    /// broadcast. 1 per request is conflict-free for accesses of up to 4 bytes. (0 for global.)
    pub wavefronts: u64,
    /// Shared memory: the conflict-free minimum of each request, ceil(distinct words / 32),
    /// summed (more than 1 per request for 8- and 16-byte accesses).
    pub ideal_wavefronts: u64,
    /// Shared memory: the largest conflict degree of one request.
    pub max_conflict: u32,
    /// Global loads and atomics: the load rounds charged to this site, summed over warps
    /// (between two barriers a warp's loads at different sites are in flight together, the
    /// n-th execution of one site waits for the (n-1)-th; docs/emulator.md, "Load rounds").
    pub rounds: u64,
}

impl SiteCounters {
    /// Global memory: 32-byte sectors per warp request (4 for a coalesced fp32 warp load).
    pub fn sectors_per_request(&self) -> f64 {
        ratio(self.sectors, self.requests)
    }

    /// Global memory: the fraction of the sectors' bytes that the lanes used,
    /// `unique_bytes / (sectors * 32)` (1.0 coalesced, 0.125 for fp32 at a stride of 32).
    pub fn efficiency(&self) -> f64 {
        ratio(self.unique_bytes, self.sectors * 32)
    }

    /// Shared memory: the mean bank-conflict degree per request (1.0 conflict-free).
    pub fn conflict_degree(&self) -> f64 {
        ratio(self.wavefronts, self.requests)
    }

    /// Shared memory: conflict degree over its conflict-free minimum (1.0: no excess).
    pub fn excess_wavefronts(&self) -> f64 {
        ratio(self.wavefronts, self.ideal_wavefronts)
    }

    /// The mean lanes per request (32 for full warps).
    pub fn lanes_per_request(&self) -> f64 {
        ratio(self.lane_accesses, self.requests)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// What the warps of one launch waited on besides memory (docs/emulator.md, "Barriers and
/// warp operations"): per warp, the most that one of its lanes took part in, summed over the
/// grid's warps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SyncCounters {
    /// Block barriers (`__syncthreads`).
    pub barriers: u64,
    /// Cluster barriers (`cluster.sync()`).
    pub cluster_barriers: u64,
    /// Warp operations whose result a lane waits for: shuffles, votes and reductions (not
    /// `__syncwarp`, not the tensor cores' `mma`).
    pub warp_ops: u64,
}

impl std::ops::AddAssign for SyncCounters {
    fn add_assign(&mut self, o: Self) {
        self.barriers += o.barriers;
        self.cluster_barriers += o.cluster_barriers;
        self.warp_ops += o.warp_ops;
    }
}

/// The memory counters of one launch.
#[derive(Clone, Debug, PartialEq)]
pub struct LaunchCounters {
    /// The kernel's name.
    pub kernel: String,
    /// The launch's number among this emulator's counted launches (from 0): counting the
    /// records of one kernel gives its launch count.
    pub launch: u64,
    /// Grid dimensions.
    pub grid: [u32; 3],
    /// Block dimensions.
    pub block: [u32; 3],
    /// Dynamic shared memory bytes per block.
    pub shared_bytes: u32,
    /// Useful FLOPs of the launch by its op's host-side formula ([`super::LaunchCfg::flops`]).
    pub flops: u64,
    /// Blocks of the grid.
    pub blocks: u64,
    /// Blocks that ran and were counted: all of them, or the sample of
    /// [`Emulator::set_block_sample`], in which case every count of this record is scaled by
    /// `blocks / blocks_run` (and compulsory sectors capped buffer by buffer at its size).
    pub blocks_run: u64,
    /// Distinct 32-byte sectors of global memory that the launch read (compulsory traffic;
    /// atomics count as reads and writes).
    pub sectors_read: u64,
    /// Distinct 32-byte sectors of global memory that the launch wrote.
    pub sectors_written: u64,
    /// The access sites, ordered by address ([`SiteCounters::index`]).
    pub sites: Vec<SiteCounters>,
    /// Barriers and warp operations.
    pub sync: SyncCounters,
}

impl LaunchCounters {
    /// Compulsory global traffic in bytes: `(sectors_read + sectors_written) * 32`.
    pub fn compulsory_bytes(&self) -> u64 {
        (self.sectors_read + self.sectors_written) * 32
    }

    /// The sites of one memory space and operation.
    pub fn sites_of(&self, space: MemSpace, op: AccessOp) -> Vec<&SiteCounters> {
        self.sites
            .iter()
            .filter(|s| s.space == space && s.op == op)
            .collect()
    }
}
