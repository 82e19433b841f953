//! The engine under the model: hand-written CPU kernels for the passes where Burn's CPU
//! backend is slow (element by element, one thread), each falling back to Burn's own
//! operation on other devices and data types.
//!
//! `model/` reads as the architecture and calls these as it would call Burn's functions:
//!
//! - [`activation`]: the exact GELU (value and slope in one parallel SIMD pass, so the
//!   backward pass is one product) and the softmax over the last dimension;
//! - [`dropout`]: dropout masks expanded from one seed per call in parallel blocks;
//! - [`adamw`]: the AdamW update as one parallel pass per parameter, with Burn's state;
//! - [`fused`]: GELU, the softmax, dropout and LayerNorm as single operations of the flex
//!   backend with backward passes of their own (Burn's `#[backend_extension]`), so a
//!   training step runs each as one parallel pass forward and one back;
//! - [`linear`]: the linear layer as one flex operation (its output written once, the bias
//!   rows first; the backward pass as products on transposed views);
//! - [`attention`]: the attention core (scores, softmax, dropout, weighted sum) as one flex
//!   operation over all (bag, head) pairs, reading and writing the heads in place;
//! - `product`: the matrix product on strided views under both of the last two;
//! - [`bf16`]: that product with bf16 operands and f32 sums, when the thread's
//!   [`Precision`](crate::runtime::Precision) asks for it (AVX512_BF16, or emulated).

pub(crate) mod activation;
pub(crate) mod adamw;
pub(crate) mod attention;
pub(crate) mod bf16;
pub(crate) mod device;
pub(crate) mod dropout;
pub(crate) mod elementwise;
pub(crate) mod fused;
pub(crate) mod linear;
pub(crate) mod mask;
mod product;
pub(crate) use product::time_product;
#[cfg(test)]
pub(crate) mod testing;
