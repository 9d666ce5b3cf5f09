//! What ptxas reported for one kernel. One definition for this crate and its build-time library
//! (kernels/build-support/ includes this file as its module `resources`), which parses the
//! reports into it and writes the registry's table with its `Debug` form, a struct literal.

/// What `ptxas -arch=sm_90 -v` reported for one kernel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelResources {
    /// Registers per thread.
    pub registers: Option<u32>,
    /// Bytes of spill stores.
    pub spill_stores: u32,
    /// Bytes of spill loads.
    pub spill_loads: u32,
    /// Bytes of stack frame.
    pub stack: u32,
    /// Bytes of static shared memory.
    pub shared: u32,
    /// Named barriers used.
    pub barriers: u32,
}
