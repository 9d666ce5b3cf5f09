//! The emulator's per-launch memory counters ([`LaunchCounters`]) gathered per kernel, with a
//! roofline estimate of each kernel's time and the latency model's ([`super::latency`]).

use std::collections::BTreeMap;

use serde::Serialize;

use super::latency::{LatencyModel, LaunchShape, LaunchWork, WarpChain};
use super::occupancy::{kernel_resources, SmLimits};
use super::roofline::{Bound, Roofline};
use crate::backend::cuda::{AccessOp, LaunchCounters, MemSpace, SiteCounters, SyncCounters};

/// The share of a kernel's global sector traffic below which a site is not a candidate for
/// [`KernelProfile::worst_efficiency`]: a bias read once per block should not hide the site
/// that moves the data.
pub const WORST_SITE_MIN_SHARE: f64 = 0.01;

/// The global-memory site of a kernel with the lowest efficiency among those that carry at
/// least [`WORST_SITE_MIN_SHARE`] of its sector traffic.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WorstSite {
    /// `load`, `store` or `atomic`.
    pub op: &'static str,
    /// Bytes per lane access (4: fp32, 16: float4).
    pub access_bytes: u32,
    /// Sectors per warp request.
    pub sectors_per_request: f64,
    /// Used bytes over the sectors' bytes.
    pub efficiency: f64,
    /// Offset of the instruction in the binary (`addr2line -f -i -e BINARY 0xOFFSET`).
    pub module_offset: u64,
}

/// One kernel's counters over all its launches in a profiled step.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KernelProfile {
    /// The kernel's name.
    pub kernel: String,
    /// Launches.
    pub launches: u64,
    /// Useful FLOPs by the host-side formulas ([`crate::backend::cuda::LaunchCfg::flops`]).
    pub flops: u64,
    /// Compulsory global traffic: distinct sectors read and written per launch, x 32 bytes,
    /// summed over launches.
    pub compulsory_bytes: u64,
    /// Global memory warp requests.
    pub global_requests: u64,
    /// Sectors those requests touched, x 32 bytes: the traffic between the SMs and L2
    /// when no request hits L1.
    pub sector_bytes: u64,
    /// Global sectors per request over all sites (4 for coalesced fp32 full warps).
    pub sectors_per_request: f64,
    /// Byte-weighted global efficiency: used bytes over sector bytes, all sites together
    /// (1.0 coalesced).
    pub efficiency: f64,
    /// The least efficient site that matters ([`WorstSite`]), if the kernel touches global
    /// memory.
    pub worst: Option<WorstSite>,
    /// Shared-memory warp requests.
    pub shared_requests: u64,
    /// 4-byte words loaded from shared memory by all lanes (the denominator of FLOPs per
    /// shared word in the GEMM-shaped kernels).
    pub shared_words_loaded: u64,
    /// Byte-weighted mean bank-conflict excess of the shared accesses: wavefronts over their
    /// conflict-free minimum (1.0 conflict-free, 2.0 two-way); `None` without shared memory.
    pub shared_conflict: Option<f64>,
    /// The worst mean excess of one shared site (same measure as `shared_conflict`).
    pub shared_conflict_max: Option<f64>,
    /// Mean warps per SM of its launches, weighted by their estimates
    /// ([`super::occupancy`]: the grid against an SM's residency limits, from ptxas's
    /// registers and shared memory); `None` without ptxas resources.
    pub warps_per_sm: Option<f64>,
    /// The roofline estimate of all launches, seconds (launch overhead included).
    pub estimate_s: f64,
    /// What bounds most of the estimate.
    pub bound: Bound,
    /// Load rounds of all launches, summed over warps ([`SiteCounters::rounds`]: the latency
    /// model's count).
    pub load_rounds: u64,
    /// Barriers and warp operations of all launches, summed over warps (the latency model's
    /// other counts).
    pub sync: SyncCounters,
    /// One warp's chain of work per launch, times the launch's waves, summed over launches
    /// (what the latency model charges); `None` without ptxas resources (no occupancy, so no
    /// waves).
    pub chain: Option<WarpChain>,
    /// The latency model's time of that chain ([`LatencyModel::time_s`]), seconds.
    pub latency_s: Option<f64>,
    /// Per launch the larger of the roofline's work and the latency model's time, plus the
    /// launch overhead, summed: the estimate that sees latency (`estimate_s` where the
    /// latency model has no resources).
    pub modelled_s: f64,
}

impl KernelProfile {
    /// FLOPs per 4-byte word loaded from shared memory (`None` without shared loads or
    /// FLOPs).
    pub fn flops_per_shared_word(&self) -> Option<f64> {
        (self.shared_words_loaded > 0 && self.flops > 0)
            .then(|| self.flops as f64 / self.shared_words_loaded as f64)
    }
}

fn op_name(op: AccessOp) -> &'static str {
    match op {
        AccessOp::Load => "load",
        AccessOp::Store => "store",
        AccessOp::Atomic => "atomic",
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        0.0
    } else {
        a / b
    }
}

/// Accumulates one kernel's launches.
#[derive(Default)]
struct Acc {
    launches: u64,
    flops: u64,
    compulsory: u64,
    estimate: f64,
    /// Sum over launches of one warp's chain x waves; `None` once a launch has none.
    chain: Option<WarpChain>,
    sync: SyncCounters,
    modelled: f64,
    /// The kernel's ptxas (registers, static shared bytes), looked up at its first launch.
    resources: Option<Option<(u32, u32)>>,
    /// Sum over launches of estimate x warps per SM, and of the estimates it covers.
    warps_weighted: f64,
    warps_weight: f64,
    by_bound: BTreeMap<&'static str, f64>,
    /// Global sites merged by address: the same instruction across launches.
    global: BTreeMap<(u64, u8), SiteCounters>,
    shared: BTreeMap<(u64, u8), SiteCounters>,
}

fn merge(into: &mut BTreeMap<(u64, u8), SiteCounters>, s: &SiteCounters) {
    let key = (s.module_offset, s.op as u8);
    match into.get_mut(&key) {
        None => {
            into.insert(key, s.clone());
        }
        Some(t) => {
            t.requests += s.requests;
            t.lane_accesses += s.lane_accesses;
            t.bytes += s.bytes;
            t.unique_bytes += s.unique_bytes;
            t.sectors += s.sectors;
            t.wavefronts += s.wavefronts;
            t.ideal_wavefronts += s.ideal_wavefronts;
            t.rounds += s.rounds;
            t.max_conflict = t.max_conflict.max(s.max_conflict);
            t.access_bytes = t.access_bytes.max(s.access_bytes);
        }
    }
}

/// Load rounds of a launch, summed over its warps ([`SiteCounters::rounds`]; only global loads
/// and atomics have any).
fn load_rounds(l: &LaunchCounters) -> u64 {
    l.sites.iter().map(|s| s.rounds).sum()
}

/// Gathers `launches` (one step's counted launches) per kernel, estimated on `roofline` and
/// by `latency`, their occupancy on `sm`; kernels in descending order of their roofline
/// estimate.
pub fn summarize(
    launches: &[LaunchCounters],
    roofline: &Roofline,
    latency: &LatencyModel,
    sm: &SmLimits,
) -> Vec<KernelProfile> {
    let mut accs: BTreeMap<&str, Acc> = BTreeMap::new();
    for l in launches {
        let a = accs.entry(l.kernel.as_str()).or_default();
        a.launches += 1;
        a.flops += l.flops;
        a.compulsory += l.compulsory_bytes();
        let (t, bound) = roofline.launch_bound(l.compulsory_bytes(), l.flops);
        a.estimate += t;
        *a.by_bound.entry(bound.name()).or_default() += t;
        let blocks = l.grid.iter().map(|&g| u64::from(g)).product();
        let threads = l.block.iter().product();
        let resources = *a
            .resources
            .get_or_insert_with(|| kernel_resources(&l.kernel));
        let occupancy = resources.and_then(|(regs, static_shared)| {
            sm.occupancy(blocks, threads, regs, static_shared + l.shared_bytes)
        });
        if let Some(o) = occupancy {
            a.warps_weighted += t * o.warps_per_sm;
            a.warps_weight += t;
        }
        let shared_requests: u64 = l
            .sites
            .iter()
            .filter(|s| s.space == MemSpace::Shared)
            .map(|s| s.requests)
            .sum();
        let chain = occupancy.map(|o| {
            LaunchShape {
                blocks,
                warps_per_block: threads.div_ceil(32),
                resident_blocks: o.resident_blocks,
                sms: sm.sms,
            }
            .chain(&LaunchWork {
                load_rounds: load_rounds(l),
                shared_requests,
                flops: l.flops,
                sync: l.sync,
            })
        });
        a.sync += l.sync;
        let lat = chain.map(|c| latency.time_s(&c));
        // A kernel's chain is known when it is known for every launch.
        a.chain = match (a.launches, a.chain, chain) {
            (1, _, c) => c,
            (_, Some(mut sum), Some(c)) => {
                sum += c;
                Some(sum)
            }
            _ => None,
        };
        let work = t - roofline.launch_s;
        a.modelled += work.max(lat.unwrap_or(0.0)) + roofline.launch_s;
        for s in &l.sites {
            match s.space {
                MemSpace::Global => merge(&mut a.global, s),
                MemSpace::Shared => merge(&mut a.shared, s),
            }
        }
    }
    let mut out: Vec<KernelProfile> = accs
        .into_iter()
        .map(|(kernel, a)| kernel_profile(kernel, a, latency))
        .collect();
    out.sort_by(|x, y| {
        y.estimate_s
            .total_cmp(&x.estimate_s)
            .then(x.kernel.cmp(&y.kernel))
    });
    out
}

fn kernel_profile(kernel: &str, a: Acc, latency: &LatencyModel) -> KernelProfile {
    let requests: u64 = a.global.values().map(|s| s.requests).sum();
    let sectors: u64 = a.global.values().map(|s| s.sectors).sum();
    let used: u64 = a.global.values().map(|s| s.unique_bytes).sum();
    let worst = a
        .global
        .values()
        .filter(|s| s.sectors as f64 >= WORST_SITE_MIN_SHARE * sectors as f64 && s.sectors > 0)
        .min_by(|x, y| x.efficiency().total_cmp(&y.efficiency()))
        .map(|s| WorstSite {
            op: op_name(s.op),
            access_bytes: s.access_bytes,
            sectors_per_request: s.sectors_per_request(),
            efficiency: s.efficiency(),
            module_offset: s.module_offset,
        });
    let shared_bytes: u64 = a.shared.values().map(|s| s.bytes).sum();
    let weighted: f64 = a
        .shared
        .values()
        .map(|s| s.excess_wavefronts() * s.bytes as f64)
        .sum();
    let shared_conflict = (shared_bytes > 0).then(|| weighted / shared_bytes as f64);
    let shared_conflict_max = a
        .shared
        .values()
        .filter(|s| s.requests > 0)
        .map(SiteCounters::excess_wavefronts)
        .max_by(f64::total_cmp);
    let shared_words_loaded = a
        .shared
        .values()
        .filter(|s| s.op == AccessOp::Load)
        .map(|s| s.bytes / 4)
        .sum();
    let bound = match a
        .by_bound
        .iter()
        .max_by(|x, y| x.1.total_cmp(y.1))
        .map(|(k, _)| *k)
    {
        Some("compute") => Bound::Compute,
        Some("launch") => Bound::Launch,
        _ => Bound::Memory,
    };
    KernelProfile {
        kernel: kernel.to_string(),
        launches: a.launches,
        flops: a.flops,
        compulsory_bytes: a.compulsory,
        global_requests: requests,
        sector_bytes: sectors * 32,
        sectors_per_request: ratio(sectors as f64, requests as f64),
        efficiency: ratio(used as f64, (sectors * 32) as f64),
        worst,
        shared_requests: a.shared.values().map(|s| s.requests).sum(),
        shared_words_loaded,
        shared_conflict,
        shared_conflict_max,
        warps_per_sm: (a.warps_weight > 0.0).then(|| a.warps_weighted / a.warps_weight),
        estimate_s: a.estimate,
        bound,
        // The global sites' rounds (shared sites have none), and the chain's time: the model
        // is linear in the chain, so the sum's time is the sum of the launches' times.
        load_rounds: a.global.values().map(|s| s.rounds).sum(),
        sync: a.sync,
        chain: a.chain,
        latency_s: a.chain.map(|c| latency.time_s(&c)),
        modelled_s: a.modelled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{H200, H200_LATENCY, H200_SM};

    /// One launch of `kernel` on `grid` blocks of 256 threads, its one global load site with
    /// `rounds` load rounds, `flops` FLOPs and 1 MB of compulsory reads.
    fn launch(kernel: &str, grid: u32, rounds: u64, flops: u64) -> LaunchCounters {
        LaunchCounters {
            kernel: kernel.into(),
            launch: 0,
            grid: [grid, 1, 1],
            block: [256, 1, 1],
            shared_bytes: 0,
            flops,
            blocks: u64::from(grid),
            blocks_run: u64::from(grid),
            sectors_read: 31_250,
            sectors_written: 0,
            sites: vec![SiteCounters {
                index: 0,
                pc: 0,
                module_offset: 0,
                space: MemSpace::Global,
                op: AccessOp::Load,
                access_bytes: 4,
                requests: 4 * rounds,
                lane_accesses: 128 * rounds,
                bytes: 512 * rounds,
                unique_bytes: 512 * rounds,
                sectors: 16 * rounds,
                wavefronts: 0,
                ideal_wavefronts: 0,
                max_conflict: 0,
                rounds,
            }],
            sync: SyncCounters::default(),
        }
    }

    /// The modelled time of a launch is the larger of its roofline work and its latency,
    /// plus the launch: by hand for a kernel with ptxas resources (two blocks of 256 threads
    /// per SM, so 264 blocks are one wave), and the roofline alone for one without.
    #[test]
    fn the_modelled_time_is_the_larger_of_the_roofline_and_the_rounds() {
        let kernel = "masked_conv2d_fwd_v4";
        let Some((regs, shared)) = kernel_resources(kernel) else {
            // No ptxas at build time: no occupancy, so no latency; the roofline stands.
            let k = &summarize(
                &[launch(kernel, 264, 1 << 20, 0)],
                &H200,
                &H200_LATENCY,
                &H200_SM,
            )[0];
            assert_eq!(k.latency_s, None);
            assert_eq!(k.modelled_s, k.estimate_s);
            return;
        };
        assert_eq!(
            H200_SM
                .occupancy(264, 256, regs, shared)
                .unwrap()
                .resident_blocks,
            2
        );
        let latency = LatencyModel {
            shared_s: 0.0,
            fma_s: 0.0,
            barrier_s: 0.0,
            cluster_s: 0.0,
            warp_op_s: 0.0,
            ..H200_LATENCY.with_load_ns(1000.0)
        };
        // 264 blocks x 8 warps, 100 rounds each: 100 µs of latency (with the FMAs' and
        // shared memory's times at 0); 1 MB is 0.23 µs and 67 MFLOP 1 µs of roofline work.
        let rounds = 264 * 8 * 100;
        let slow = &summarize(
            &[launch(kernel, 264, rounds, 67_000_000)],
            &H200,
            &latency,
            &H200_SM,
        )[0];
        let lat = slow.latency_s.unwrap();
        assert!((lat - 100e-6).abs() < 1e-12, "{lat}");
        assert!(
            (slow.modelled_s - (100e-6 + H200.launch_s)).abs() < 1e-12,
            "{slow:?}"
        );
        assert!(
            (slow.estimate_s - (1e-6 + H200.launch_s)).abs() < 1e-12,
            "{slow:?}"
        );
        assert_eq!(slow.load_rounds, rounds);
        let chain = slow.chain.unwrap();
        assert_eq!(chain.load_rounds, 100.0);
        assert!((chain.fma_instructions - 67e6 / 64.0 / (264.0 * 8.0)).abs() < 1e-9);
        // 6.7 GFLOP (100 µs at 67 TFLOP/s) against 1 µs of latency: the roofline.
        let busy = &summarize(
            &[launch(kernel, 264, 264 * 8, 6_700_000_000)],
            &H200,
            &latency,
            &H200_SM,
        )[0];
        assert!((busy.latency_s.unwrap() - 1e-6).abs() < 1e-12);
        assert_eq!(busy.modelled_s, busy.estimate_s);
        // One block more is a second wave: twice the latency.
        let waves = &summarize(
            &[launch(kernel, 265, 265 * 8 * 100, 0)],
            &H200,
            &latency,
            &H200_SM,
        )[0];
        assert!(
            (waves.latency_s.unwrap() - 200e-6).abs() < 1e-12,
            "{waves:?}"
        );
        // Two launches add up.
        let two = &summarize(
            &[
                launch(kernel, 264, rounds, 0),
                launch(kernel, 264, rounds, 0),
            ],
            &H200,
            &latency,
            &H200_SM,
        )[0];
        assert!((two.latency_s.unwrap() - 200e-6).abs() < 1e-12);
        assert!((two.modelled_s - 2.0 * (100e-6 + H200.launch_s)).abs() < 1e-12);
    }

    /// A launch's barriers and warp operations reach its kernel's totals and, per warp and
    /// wave, its chain: by hand, 264 blocks of 8 warps (one wave) with 10 barriers, 2 cluster
    /// barriers and 50 warp operations per warp, at 1 µs, 10 µs and 0.1 µs each, are 35 µs a
    /// launch, 70 for two.
    #[test]
    fn barriers_and_warp_operations_are_in_the_chain() {
        let kernel = "masked_conv2d_fwd_v4";
        if kernel_resources(kernel).is_none() {
            return; // no ptxas at build time: no occupancy, so no chain (tested above)
        }
        let warps = 264 * 8;
        let mut l = launch(kernel, 264, 0, 0);
        l.sync = SyncCounters {
            barriers: 10 * warps,
            cluster_barriers: 2 * warps,
            warp_ops: 50 * warps,
        };
        let latency = LatencyModel {
            load_s: 0.0,
            shared_s: 0.0,
            fma_s: 0.0,
            barrier_s: 1e-6,
            cluster_s: 1e-5,
            warp_op_s: 1e-7,
            ..H200_LATENCY
        };
        let k = &summarize(&[l.clone(), l], &H200, &latency, &H200_SM)[0];
        assert_eq!(k.sync.barriers, 2 * 10 * warps);
        assert_eq!(k.sync.cluster_barriers, 2 * 2 * warps);
        assert_eq!(k.sync.warp_ops, 2 * 50 * warps);
        let chain = k.chain.unwrap();
        assert_eq!(
            (chain.barriers, chain.cluster_barriers, chain.warp_ops),
            (20.0, 4.0, 100.0)
        );
        assert!((k.latency_s.unwrap() - 70e-6).abs() < 1e-12, "{k:?}");
    }
}
