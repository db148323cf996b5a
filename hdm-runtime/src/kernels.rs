//! Fused elementwise kernels: bias plus activation over a GEMM output, activation derivatives
//! folded into the backward pass, and the fused losses.
