// assert.h for emulated kernels (found before the system header through -I): a failed assert
// ends the launch with an error naming the block and thread, as the device's assert traps,
// instead of aborting the whole host process. Like the standard header it has no include
// guard: NDEBUG is honoured at every inclusion.
#ifndef PIXELRNN_EMU_TRAP_DECLARED
#define PIXELRNN_EMU_TRAP_DECLARED
namespace pixelrnn_emu {
[[noreturn]] void trap(const char* why);
}
#endif
#undef assert
#ifdef NDEBUG
#define assert(e) ((void)0)
#else
#define assert(e) ((e) ? (void)0 : ::pixelrnn_emu::trap("assert(" #e ") failed"))
#endif
