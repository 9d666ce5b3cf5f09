//! How a kernel parameter is passed. One definition for this crate and its build-time library
//! (kernels/build-support/ includes this file as its module `param_kind`): the parser's kinds,
//! the generated signature table (`ParamKind::<variant>`, written with `Debug`) and the launch
//! checks cannot disagree. The variants are in the order of the codes of
//! `pixelrnn_emu::param_kind` (kernels/emu/launch.h).

/// How a kernel parameter is passed, as declared in its `kernels/*.cu` signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// `const float* __restrict__` (or another 4/8-byte pointee): a buffer the kernel reads.
    ConstPtr,
    /// `float* __restrict__` (or another pointee): a buffer the kernel writes.
    Ptr,
    /// `int`.
    I32,
    /// `unsigned` / `unsigned int`.
    U32,
    /// `long long` / `pixelrnn_index_t`.
    I64,
    /// `unsigned long long`.
    U64,
    /// `float`.
    F32,
}

impl ParamKind {
    /// Whether the parameter is a buffer (pointer).
    pub fn is_pointer(self) -> bool {
        matches!(self, ParamKind::ConstPtr | ParamKind::Ptr)
    }

    /// The C type as written in kernel signatures (`"const float*"`, `"int"`...).
    pub fn c_type(self) -> &'static str {
        match self {
            ParamKind::ConstPtr => "const float*",
            ParamKind::Ptr => "float*",
            ParamKind::I32 => "int",
            ParamKind::U32 => "unsigned",
            ParamKind::I64 => "long long",
            ParamKind::U64 => "unsigned long long",
            ParamKind::F32 => "float",
        }
    }
}
