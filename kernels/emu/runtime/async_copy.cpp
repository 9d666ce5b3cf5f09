// runtime/async_copy.cpp: the runtime side of cp.async (kernels/cp_async.cuh, cuda_emu.h). The
// kernel side has read the copy's source and poisoned its destination already; here the value
// waits in the issuing fiber's list until a wait covers its commit group, and lands then: the
// latest moment the hardware allows, so that a read that the wait does not order sees the
// poison (docs/emulator.md, "Asynchronous copies").

#include "runtime.h"

namespace pixelrnn_emu {

void cp_async_check(const void* dst, const void* src, unsigned bytes) {
    if (bytes != 4 && bytes != 8 && bytes != 16) trap("cp.async copies 4, 8 or 16 bytes");
    if ((uintptr_t)dst % bytes != 0) trap("cp.async: the shared destination is misaligned");
    if ((uintptr_t)src % bytes != 0) trap("cp.async: the global source is misaligned");
}

void cp_async_issue(void* dst, const void* value, unsigned bytes) {
    rt::Fiber* f = rt::tl_worker->current;
    rt::Fiber::PendingCopy c;
    c.dst = dst;
    memcpy(c.bytes, value, bytes);
    c.size = bytes;
    c.group = -1;
    f->copies.push_back(c);
}

void cp_async_commit() {
    rt::Fiber* f = rt::tl_worker->current;
    for (rt::Fiber::PendingCopy& c : f->copies) {
        if (c.group < 0) c.group = f->groups_committed;
    }
    ++f->groups_committed;
}

void cp_async_wait(int newest_pending) {
    rt::Fiber* f = rt::tl_worker->current;
    // Groups numbered below `landed` complete; the open group is not covered by any wait.
    const int64_t landed = f->groups_committed - newest_pending;
    size_t kept = 0;
    for (size_t i = 0; i < f->copies.size(); ++i) {
        rt::Fiber::PendingCopy& c = f->copies[i];
        if (c.group >= 0 && c.group < landed) {
            memcpy(c.dst, c.bytes, c.size);
        } else {
            f->copies[kept++] = c;
        }
    }
    f->copies.resize(kept);
}

}  // namespace pixelrnn_emu
