//! What the Row LSTM and Diagonal BiLSTM tests (tests/recurrent_*.rs) share: the recurrence
//! variants they run and their tolerances.
//!
//! Tolerances, all 1e-5 norm-wise (max |got - want| / max |want|: an element that is a sum of
//! mixed-sign terms has an absolute, not relative, error), the fp32 figure of STYLE.md:
//! - float32 forward vs float64 reference: a few dozen float32 roundings along the longest
//!   recurrence; a missing tap, a wrong gate or a wrong neighbour is O(0.1..1);
//! - float32 backward vs float64 central differences (whose own error is ~1e-9): a dropped path
//!   through the cell or a tap is O(1e-2..1);
//! - fused vs unfused: the same maths in a different summation order.
//!
//! Largest errors seen (CPU, these files' shapes and seeds): 6e-7 forward and fused/unfused,
//! 4e-7 gradients: the tolerance leaves more than 15x headroom.
//!
//! Where the spec makes a gradient structurally zero (masked taps; positions outside a receptive
//! field) the tests ask for an exact 0.0.

use pixelrnn::backend::Recurrence;

/// The CPU recurrence variants every check runs.
pub const RECS: [Recurrence; 2] = [Recurrence::Fused, Recurrence::Unfused];

/// float32 result vs float64 reference (see the module header).
pub const FWD_TOL: f64 = 1e-5;
/// float32 backward vs float64 central differences (see the module header).
pub const GRAD_TOL: f64 = 1e-5;
/// Fused vs unfused recurrence.
pub const REC_TOL: f64 = 1e-5;
/// Step of the central differences on the float64 references: truncation error ~eps^2 = 1e-10,
/// rounding error ~1e-16 / eps = 1e-11 (relative to the loss).
pub const FD_EPS: f64 = 1e-5;
