// launch.h: the interface between the kernel translation units that build.rs generates (one per
// kernels/*.cu, compiled with PIXELRNN_EMU) and the emulator runtime (runtime/).
//
// For each emulated kernel K the generated unit defines
//   extern "C" const PixelrnnEmuKernel pixelrnn_emu_kernel_K = {"K", entry, nparams, max,
//                                                                counted_entry};
// where `entry` unpacks a cuLaunchKernel-style argument array (args[i] points to the i-th
// argument's value) into the typed call, and `max` is the first argument of the kernel's
// __launch_bounds__ (0 without one), evaluated by the C++ compiler so that macros work.
#pragma once

#include <stddef.h>

#include <tuple>
#include <type_traits>
#include <utility>

extern "C" {
typedef struct PixelrnnEmuKernel {
    const char* name;
    void (*entry)(void** args);
    int nparams;
    int max_threads;
    // The same kernel from the counted unit (compiled with -fsanitize=thread; its accesses
    // call the memory counters of runtime/counters.cpp).
    void (*counted_entry)(void** args);
} PixelrnnEmuKernel;
}

namespace pixelrnn_emu {

// Parameter kinds, in the order of the Rust enum kernels::ParamKind.
enum ParamKindCode : int {
    KIND_CONST_PTR = 0,
    KIND_PTR = 1,
    KIND_I32 = 2,
    KIND_U32 = 3,
    KIND_I64 = 4,
    KIND_U64 = 5,
    KIND_F32 = 6,
    KIND_UNSUPPORTED = -1,
};

template <class T>
constexpr int param_kind() {
    using U = typename std::remove_cv<T>::type;
    if constexpr (std::is_pointer<U>::value) {
        using E = typename std::remove_pointer<U>::type;
        using B = typename std::remove_cv<E>::type;
        constexpr bool ok = std::is_same<B, float>::value || std::is_same<B, double>::value ||
                            std::is_same<B, int>::value || std::is_same<B, unsigned>::value ||
                            std::is_same<B, long long>::value;
        if constexpr (!ok) {
            return KIND_UNSUPPORTED;
        } else {
            return std::is_const<E>::value ? KIND_CONST_PTR : KIND_PTR;
        }
    } else if constexpr (std::is_same<U, int>::value) {
        return KIND_I32;
    } else if constexpr (std::is_same<U, unsigned>::value) {
        return KIND_U32;
    } else if constexpr (std::is_same<U, long long>::value) {
        return KIND_I64;
    } else if constexpr (std::is_same<U, unsigned long long>::value) {
        return KIND_U64;
    } else if constexpr (std::is_same<U, float>::value) {
        return KIND_F32;
    } else {
        return KIND_UNSUPPORTED;
    }
}

template <class F>
struct kernel_traits;
template <class... P>
struct kernel_traits<void (*)(P...)> {
    static constexpr int arity = sizeof...(P);
    template <int I>
    using param = typename std::tuple_element<I, std::tuple<P...>>::type;
};

template <class... P, size_t... I>
static inline void invoke_impl(void (*f)(P...), void** args, std::index_sequence<I...>) {
    f(*static_cast<typename std::remove_cv<P>::type*>(args[I])...);
}

// Calls `f` with the values args[0..n) point to (the cuLaunchKernel convention).
template <class... P>
static inline void invoke(void (*f)(P...), void** args) {
    invoke_impl(f, args, std::index_sequence_for<P...>{});
}

}  // namespace pixelrnn_emu

// The first argument of __launch_bounds__(...), or 0.
#define PIXELRNN_EMU_FIRST(a, ...) (a)
