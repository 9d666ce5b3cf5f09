// runtime/c_api.cpp: the runtime's C interface, declared on the Rust side by kernels/src/emu.rs
// (the structs it fills are in runtime.h): buffers with or without guard pages, the table of
// emulated kernels, and the launch, which checks the kernel's name, argument count and launch
// configuration against the device's limits before running the grid, and the memory counters
// of a counted launch.

#include <dlfcn.h>
#include <link.h>

#include <algorithm>

#include "runtime.h"

// The memory counters of one counted launch (pixelrnn_emu_launch's `counters_out`).
struct PixelrnnEmuCounters {
    std::vector<PixelrnnEmuSite> sites;  // ordered by address
    unsigned long long sectors_read = 0;
    unsigned long long sectors_written = 0;
    unsigned long long blocks_run = 0;
    unsigned long long blocks_total = 0;
    unsigned long long barriers = 0, cluster_barriers = 0, warp_ops = 0;
};

namespace {

// Distinct sectors of `set` scaled by `scale`, buffer by buffer and capped at each buffer's
// own sectors: under block sampling, data every block reads (weights) is counted once, data
// each block reads its own part of (activations) is extrapolated to the whole grid.
unsigned long long scaled_sectors(const std::unordered_set<uint64_t>& set,
                                  const PixelrnnEmuBuf* bufs, size_t nbufs, double scale) {
    if (scale == 1.0) return set.size();
    std::vector<uint64_t> sorted(set.begin(), set.end());
    std::sort(sorted.begin(), sorted.end());
    // Buffers by address; an argument passed twice is counted once.
    std::vector<std::pair<uint64_t, uint64_t>> ranges;
    for (size_t i = 0; i < nbufs; ++i) {
        const uint64_t lo = (uint64_t)(uintptr_t)bufs[i].ptr / 32;
        const uint64_t bytes = bufs[i].len * 4;
        if (bytes == 0) continue;
        const uint64_t hi = ((uint64_t)(uintptr_t)bufs[i].ptr + bytes - 1) / 32 + 1;
        ranges.emplace_back(lo, hi);
    }
    std::sort(ranges.begin(), ranges.end());
    ranges.erase(std::unique(ranges.begin(), ranges.end()), ranges.end());
    double total = 0.0;
    for (const auto& [lo, hi] : ranges) {
        const auto a = std::lower_bound(sorted.begin(), sorted.end(), lo);
        const auto b = std::lower_bound(sorted.begin(), sorted.end(), hi);
        const double seen = (double)(b - a);
        total += std::min(seen * scale, (double)(hi - lo));
    }
    return (unsigned long long)(total + 0.5);
}

unsigned long long scaled(uint64_t v, double scale) {
    return (unsigned long long)((double)v * scale + 0.5);
}

}  // namespace

// The generated table of emulated kernels (build.rs).
extern "C" const PixelrnnEmuKernel* const pixelrnn_emu_kernels[];
extern "C" const size_t pixelrnn_emu_kernel_count;

using namespace pixelrnn_emu;
using namespace pixelrnn_emu::rt;

extern "C" {

// A buffer of `len` floats: 128-byte aligned, or flush against a guard page (`guarded`).
float* pixelrnn_emu_alloc(size_t len, int guarded) {
    if (guarded) return (float*)alloc_guarded(len * 4);
    return (float*)aligned_alloc(128, round_up(len * 4 > 0 ? len * 4 : 4, 128));
}

void pixelrnn_emu_free(float* p, size_t len, int guarded) {
    if (!p) return;
    if (guarded) {
        free_guarded(p, len * 4);
    } else {
        free(p);
    }
}

// The bytes of the static shared arena registered so far (every PIXELRNN_SHARED declaration
// that ran, 128-byte aligned; memory.cpp).
size_t pixelrnn_emu_static_shared_bytes() { return static_shared_registered(); }

// The main program's static thread-local storage (its PT_TLS segment, rounded to its
// alignment), in bytes. glibc carves it out of every thread's stack, which is why the emulator
// keeps shared arrays out of it (cuda_emu.h); tests/emulator.rs holds it small.
size_t pixelrnn_emu_static_tls_bytes() {
    size_t bytes = 0;
    dl_iterate_phdr(
        [](struct dl_phdr_info* info, size_t, void* data) {
            for (int i = 0; i < info->dlpi_phnum; ++i) {
                const ElfW(Phdr)& ph = info->dlpi_phdr[i];
                if (ph.p_type == PT_TLS) {
                    const size_t align = ph.p_align ? ph.p_align : 1;
                    *static_cast<size_t*>(data) = round_up(ph.p_memsz, align);
                }
            }
            return 1;  // the first object is the main program: stop
        },
        &bytes);
    return bytes;
}

// Number of emulated kernels, and the name of kernel `i` (for tests of the table).
size_t pixelrnn_emu_count() { return pixelrnn_emu_kernel_count; }
const char* pixelrnn_emu_name(size_t i) {
    return i < pixelrnn_emu_kernel_count ? pixelrnn_emu_kernels[i]->name : nullptr;
}

// Runs kernel `name` on grid x block synchronously, in clusters of `cluster` blocks
// ((1, 1, 1): none). `max_shared` is what the host opted the kernel in to (cuFuncSetAttribute's
// CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES on a device), at most 227 KiB, or 0 when it
// did not. As on the hardware, a kernel's static and dynamic shared memory together get 48 KiB
// without the opt-in; with it the dynamic part gets what was opted in to, and static plus
// opted-in must fit the 227 KiB. The static part is known once the kernel's declarations ran,
// so that check comes after the run (whose outputs the error then voids); it is the sum of the
// declarations that ran, where ptxas counts every one (a declaration on a branch no thread
// took is missed). Returns 0 on success, else e->code.
int pixelrnn_emu_launch(const char* name, const unsigned grid[3], const unsigned block[3],
                        const unsigned cluster[3], unsigned shared_bytes, unsigned max_shared,
                        void** args, size_t nargs, const PixelrnnEmuBuf* bufs, size_t nbufs,
                        unsigned long long seed, unsigned workers, int bounds_check,
                        PixelrnnEmuError* e, PixelrnnEmuCounters** counters_out,
                        unsigned long long sample_blocks) {
    memset(e, 0, sizeof *e);
    if (counters_out) *counters_out = nullptr;
    const PixelrnnEmuKernel* kernel = nullptr;
    for (size_t i = 0; i < pixelrnn_emu_kernel_count; ++i) {
        if (strcmp(pixelrnn_emu_kernels[i]->name, name) == 0) {
            kernel = pixelrnn_emu_kernels[i];
            break;
        }
    }
    if (!kernel) {
        e->code = 3;
        snprintf(e->message, sizeof e->message, "no emulated kernel named %s", name);
        return e->code;
    }
    auto fail = [&](const char* fmt, unsigned long long a, unsigned long long b) {
        e->code = 1;
        snprintf(e->message, sizeof e->message, fmt, a, b);
        return e->code;
    };
    if ((size_t)kernel->nparams != nargs) {
        return fail("takes %llu arguments, got %llu", (unsigned long long)kernel->nparams,
                    (unsigned long long)nargs);
    }
    for (int d = 0; d < 3; ++d) {
        if (grid[d] == 0 || block[d] == 0) {
            return fail("empty launch: grid and block dimensions must be at least 1 (%llu%llu)",
                        0, 0);
        }
    }
    const unsigned long long threads = (unsigned long long)block[0] * block[1] * block[2];
    if (threads > (unsigned long long)kMaxThreads || block[2] > 64) {
        return fail("invalid block: %llu threads (at most 1024, z at most 64; z = %llu)", threads,
                    block[2]);
    }
    if (grid[0] > 0x7fffffffu || grid[1] > 65535 || grid[2] > 65535) {
        return fail("invalid grid: x at most 2^31-1, y and z at most 65535 (y = %llu, z = %llu)",
                    grid[1], grid[2]);
    }
    if (kernel->max_threads > 0 && threads > (unsigned long long)kernel->max_threads) {
        return fail("%llu threads per block exceed its __launch_bounds__(%llu)", threads,
                    (unsigned long long)kernel->max_threads);
    }
    if (shared_bytes > kMaxSharedBytes) {
        return fail("%llu bytes of dynamic shared memory exceed the %llu of the device",
                    shared_bytes, kMaxSharedBytes);
    }
    if (shared_bytes > (max_shared ? max_shared : kDefaultSharedBytes)) {
        if (max_shared == 0) {
            return fail("%llu bytes of dynamic shared memory exceed the %llu a kernel may use "
                        "without opting in (cuFuncSetAttribute with "
                        "CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES; "
                        "Executor::opt_in_shared)",
                        shared_bytes, kDefaultSharedBytes);
        }
        return fail("%llu bytes of dynamic shared memory exceed the %llu the kernel opted in to",
                    shared_bytes, max_shared);
    }
    unsigned long long cluster_size = 1;
    for (int d = 0; d < 3; ++d) {
        if (cluster[d] == 0 || grid[d] % cluster[d] != 0) {
            e->code = 1;
            snprintf(e->message, sizeof e->message,
                     "invalid cluster (%u, %u, %u): every dimension at least 1 and dividing the "
                     "grid's (%u, %u, %u)",
                     cluster[0], cluster[1], cluster[2], grid[0], grid[1], grid[2]);
            return e->code;
        }
        cluster_size *= cluster[d];
    }
    if (cluster_size > kMaxClusterBlocks) {
        return fail("a cluster of %llu blocks exceeds the portable %llu (the non-portable "
                    "cluster sizes are not emulated)",
                    cluster_size, kMaxClusterBlocks);
    }
    install_handlers();

    Launch L;
    L.kernel = kernel;
    L.args = args;
    L.grid = dim3(grid[0], grid[1], grid[2]);
    L.block = dim3(block[0], block[1], block[2]);
    L.shared_bytes = shared_bytes;
    static std::atomic<uint64_t> launches{0};
    L.serial = ++launches;
    L.seed = seed;
    L.bounds_check = bounds_check != 0;
    L.bufs = bufs;
    L.nbufs = nbufs;
    L.nblocks = (uint64_t)grid[0] * grid[1] * grid[2];
    L.error = e;
    LaunchCounters counters;
    if (counters_out) {
        L.counters = &counters;
        L.sample_blocks = sample_blocks;
    }

    uint64_t nworkers = workers == 0 ? 1 : workers;
    if (cluster_size > 1) {
        // One host thread per block of a cluster, in groups that run a cluster at a time.
        L.cluster = dim3(cluster[0], cluster[1], cluster[2]);
        L.cluster_size = (unsigned)cluster_size;
        L.nclusters = L.nblocks / cluster_size;
        uint64_t ngroups = nworkers / cluster_size;
        if (ngroups < 1) ngroups = 1;
        if (ngroups > L.clusters_run()) ngroups = L.clusters_run();
        make_cluster_groups(&L, (int)ngroups);
        nworkers = ngroups * cluster_size;
    } else if (nworkers > L.blocks_run()) {
        nworkers = L.blocks_run();
    }
    HelperPool& helpers = helper_pool();
    if (nworkers > 1) {
        const int queued = helpers.submit(&L, (int)(nworkers - 1));
        if (L.groups && (uint64_t)queued < nworkers - 1) {
            // A cluster's blocks must run together: without their threads it cannot start.
            PixelrnnEmuError why;
            memset(&why, 0, sizeof why);
            why.code = 1;
            snprintf(why.message, sizeof why.message,
                     "could not start the %llu host threads a cluster of %u blocks needs",
                     (unsigned long long)(nworkers - 1), L.cluster_size);
            *e = why;
            L.failed.store(true);
        }
    }
    if (!L.failed.load()) run_worker(&L);
    if (nworkers > 1) helpers.wait(&L);
    free_cluster_groups(&L);
    const unsigned long long static_bytes = L.static_bytes.load();
    if (e->code == 0 && max_shared == 0 && shared_bytes + static_bytes > kDefaultSharedBytes) {
        e->code = 1;
        snprintf(e->message, sizeof e->message,
                 "%u bytes of dynamic and %llu of static shared memory exceed the %u a kernel may "
                 "use without opting in (cuFuncSetAttribute with "
                 "CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES; Executor::opt_in_shared)",
                 shared_bytes, static_bytes, kDefaultSharedBytes);
    } else if (e->code == 0 && max_shared > 0 && max_shared + static_bytes > kMaxSharedBytes) {
        e->code = 1;
        snprintf(e->message, sizeof e->message,
                 "the %u bytes of dynamic shared memory opted in to and %llu of static exceed "
                 "the %u of the device",
                 max_shared, static_bytes, kMaxSharedBytes);
    }
    if (counters_out && e->code == 0) {
        PixelrnnEmuCounters* c = new PixelrnnEmuCounters;
        c->blocks_run = L.blocks_run();
        c->blocks_total = L.nblocks;
        const double scale = (double)L.nblocks / (double)L.blocks_run();
        c->sectors_read = scaled_sectors(counters.read_sectors, bufs, nbufs, scale);
        c->sectors_written = scaled_sectors(counters.written_sectors, bufs, nbufs, scale);
        c->barriers = scaled(counters.sync.barriers, scale);
        c->cluster_barriers = scaled(counters.sync.cluster_barriers, scale);
        c->warp_ops = scaled(counters.sync.warp_ops, scale);
        for (const auto& [key, t] : counters.sites) {
            PixelrnnEmuSite s;
            memset(&s, 0, sizeof s);
            s.pc = t.pc;
            Dl_info info;
            if (dladdr((void*)(uintptr_t)t.pc, &info) != 0 && info.dli_fbase) {
                s.module_offset = t.pc - (unsigned long long)(uintptr_t)info.dli_fbase;
            }
            s.space = t.space;
            s.op = t.op;
            s.access_bytes = t.access_bytes;
            s.max_degree = t.max_degree;
            s.requests = scaled(t.requests, scale);
            s.lane_accesses = scaled(t.lane_accesses, scale);
            s.bytes = scaled(t.bytes, scale);
            s.unique_bytes = scaled(t.unique_bytes, scale);
            s.sectors = scaled(t.sectors, scale);
            s.wavefronts = scaled(t.wavefronts, scale);
            s.ideal_wavefronts = scaled(t.ideal_wavefronts, scale);
            s.rounds = scaled(t.rounds, scale);
            c->sites.push_back(s);
        }
        std::sort(c->sites.begin(), c->sites.end(),
                  [](const PixelrnnEmuSite& a, const PixelrnnEmuSite& b) {
                      return a.pc != b.pc ? a.pc < b.pc
                                          : (a.space != b.space ? a.space < b.space : a.op < b.op);
                  });
        *counters_out = c;
    }
    return e->code;
}

// The sites of `c` (`*n` of them, ordered by address) and its distinct sectors.
const PixelrnnEmuSite* pixelrnn_emu_counters_sites(const PixelrnnEmuCounters* c, size_t* n) {
    *n = c->sites.size();
    return c->sites.data();
}
void pixelrnn_emu_counters_sectors(const PixelrnnEmuCounters* c, unsigned long long* read,
                                   unsigned long long* written) {
    *read = c->sectors_read;
    *written = c->sectors_written;
}
// The blocks that ran (and were counted) and the blocks of the grid.
void pixelrnn_emu_counters_blocks(const PixelrnnEmuCounters* c, unsigned long long* run,
                                  unsigned long long* total) {
    *run = c->blocks_run;
    *total = c->blocks_total;
}
// Synchronisation per warp, summed over the grid's warps: block barriers, cluster barriers,
// warp operations (runtime/counters.cpp says what counts).
void pixelrnn_emu_counters_sync(const PixelrnnEmuCounters* c, unsigned long long* barriers,
                                unsigned long long* cluster_barriers,
                                unsigned long long* warp_ops) {
    *barriers = c->barriers;
    *cluster_barriers = c->cluster_barriers;
    *warp_ops = c->warp_ops;
}
void pixelrnn_emu_counters_free(PixelrnnEmuCounters* c) { delete c; }

}  // extern "C"
