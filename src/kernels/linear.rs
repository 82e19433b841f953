//! The linear layer `y = x·W + b` as one operation of the flex backend, with its own
//! backward pass.
//!
//! Through Burn's operations a linear layer on flex is a matrix product whose output buffer
//! the backend zero-fills and then copies once more before the product writes it (the
//! allocation of `FlexTensor::empty`), followed by a broadcast addition of the bias, a pass
//! on one thread. Its backward pass adds a transposed copy of the input and a sum over rows
//! on one thread. Here the output buffer is allocated once, the bias rows are written into
//! it in parallel and the product accumulates onto them (`gemm` reads the destination), and
//! the backward pass calls the product kernel with transposed strides instead of copies:
//!
//! - `dx = dy · Wᵀ`, `dW = xᵀ · dy`: products on strided views, each output written once;
//! - `db = Σ_rows dy`: parallel partial sums over blocks of rows.
//!
//! Only f32 tensors on flex devices come here; [`linear`] routes the rest to Burn's
//! [`Linear::forward`].

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, backend_extension};
use burn::nn::Linear;
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

use super::device::on_flex;
use super::fused::{len, owned};
use super::product::{View, product};

/// Rows of the output written per parallel task when filling in the bias, and of the
/// gradient summed per task for the bias's gradient.
const ROW_BLOCK: usize = 64;

/// The linear operation, implemented for flex and for autodiff over flex.
#[backend_extension(Flex, Autodiff)]
pub trait LinearOps: Backend {
    /// `x · weight + bias` for `x` `[rows, d_in]`, `weight` `[d_in, d_out]` and `bias`
    /// `[d_out]`; a `bias` of no elements (shape `[0]`) means none.
    fn fused_linear(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

/// `linear.forward(x)`: for f32 tensors on flex devices as one operation (the leading
/// dimensions of `x` folded into rows), otherwise Burn's.
pub(crate) fn linear<const D: usize>(linear: &Linear, x: Tensor<D>) -> Tensor<D> {
    let weight = linear.weight.val();
    let fused = on_flex(&x.device())
        && x.dtype() == DType::F32
        && weight.dtype() == DType::F32
        && linear
            .bias
            .as_ref()
            .is_none_or(|b| b.val().dtype() == DType::F32);
    if !fused || D < 2 {
        return linear.forward(x);
    }
    let dims = x.dims();
    let d_in = dims[D - 1];
    let d_out = weight.dims()[1];
    let rows = dims[..D - 1].iter().product::<usize>();
    let bias = match &linear.bias {
        Some(b) => b.val(),
        None => Tensor::<1>::empty([0], &x.device()),
    };
    let y = <Dispatch as LinearOps>::fused_linear(
        x.reshape([rows, d_in]).into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
    );
    let mut out = dims;
    out[D - 1] = d_out;
    Tensor::<2>::from_dispatch(y).reshape(out)
}

impl LinearOps for Flex {
    fn fused_linear(x: FlexTensor, weight: FlexTensor, bias: FlexTensor) -> FlexTensor {
        forward(&owned(x), &weight, &bias)
    }
}

impl<C: CheckpointStrategy> LinearOps for Autodiff<Flex, C> {
    fn fused_linear(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        match LinearBackward
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let input = owned(x.into_primitive());
                let weight = weight.into_primitive();
                let y = forward(&input, &weight, bias.primitive());
                prep.finish((input, weight), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::fused_linear(
                x.into_primitive(),
                weight.into_primitive(),
                bias.into_primitive(),
            )),
        }
    }
}

/// A new row-major `[m, n]` tensor `a · b` for `a` `[m, k]` and `b` `[k, n]`, with `bias`
/// (`n` values) added to every row when given. The buffer is written once: the bias rows
/// first (in parallel), onto which the product accumulates.
fn matrix_product(
    m: usize,
    n: usize,
    k: usize,
    a: View,
    b: View,
    bias: Option<&[f32]>,
) -> FlexTensor {
    let size = m * n;
    let mut out: Vec<f32> = Vec::with_capacity(size);
    let filled = match bias {
        Some(row) if n > 0 => {
            out.spare_capacity_mut()[..size]
                .par_chunks_mut(ROW_BLOCK * n)
                .for_each(|block| {
                    for dst in block.chunks_exact_mut(n) {
                        for (d, v) in dst.iter_mut().zip(row) {
                            d.write(*v);
                        }
                    }
                });
            true
        }
        _ => false,
    };
    // SAFETY: the caller's views address `[m, k]` and `[k, n]` matrices of live values;
    // `out` has room for `m · n` and is initialized when `filled`.
    unsafe { product(m, n, k, out.as_mut_ptr(), n, filled, a, b, 1.0, true) };
    // SAFETY: every element was written above: by the bias rows, or by the product
    // (without `accumulate` it writes all `m · n`, zeros for an empty sum).
    unsafe { out.set_len(size) };
    FlexTensor::from_data(TensorData::new(out, [m, n]))
}

/// `x · weight + bias` for contiguous `x` `[rows, d_in]`.
fn forward(x: &FlexTensor, weight: &FlexTensor, bias: &FlexTensor) -> FlexTensor {
    let shape = x.layout().shape();
    let (rows, d_in) = (shape[0], shape[1]);
    let d_out = weight.layout().shape()[1];
    let bias = (len(bias) > 0).then(|| owned(bias.clone()));
    let row = bias.as_ref().map(|b| &b.storage::<f32>()[..d_out]);
    matrix_product(rows, d_out, d_in, View::of(x), View::of(weight), row)
}

/// The backward pass of the linear operation; its state is the (contiguous) input and the
/// weight.
#[derive(Debug)]
struct LinearBackward;

impl Backward<Flex, 3> for LinearBackward {
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w, node_b] = ops.parents;
        let grad = owned(grads.consume::<Flex>(&ops.node));
        let (x, weight) = ops.state;
        let shape = x.layout().shape();
        let (rows, d_in) = (shape[0], shape[1]);
        let d_out = weight.layout().shape()[1];
        let dy = View::of(&grad);
        if let Some(node) = node_b {
            let db = column_sums(&grad.storage::<f32>()[..rows * d_out], d_out);
            grads.register::<Flex>(node.id, FlexTensor::from_data(TensorData::new(db, [d_out])));
        }
        if let Some(node) = node_w {
            // dW = xᵀ · dy: [d_in, rows] · [rows, d_out].
            let dw = matrix_product(d_in, d_out, rows, View::of(&x).t(), dy, None);
            grads.register::<Flex>(node.id, dw);
        }
        if let Some(node) = node_x {
            // dx = dy · Wᵀ: [rows, d_out] · [d_out, d_in].
            let dx = matrix_product(rows, d_in, d_out, dy, View::of(&weight).t(), None);
            grads.register::<Flex>(node.id, dx);
        }
    }
}

/// The sums of the columns of `m` (rows of `width`), in parallel over blocks of rows.
fn column_sums(m: &[f32], width: usize) -> Vec<f32> {
    if width == 0 {
        return Vec::new();
    }
    m.par_chunks(ROW_BLOCK * width)
        .map(|block| {
            let mut sums = vec![0.0f32; width];
            for row in block.chunks_exact(width) {
                sums.iter_mut().zip(row).for_each(|(s, v)| *s += v);
            }
            sums
        })
        .reduce(
            || vec![0.0f32; width],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            },
        )
}

#[cfg(test)]
mod tests {
    use super::super::testing::{close_named, values};
    use super::*;
    use burn::module::Param;
    use burn::nn::LinearConfig;
    use burn::tensor::{Device, Distribution};

    /// Values and the gradients of input, weight and bias equal Burn's `Linear::forward`
    /// within float error, with and without a bias, for a 3-d input (folded into rows), a
    /// product large enough to run in parallel and a weight that is a transposed view.
    #[test]
    fn equals_burns_linear_values_and_gradients() {
        let device = Device::flex().autodiff();
        device.seed(11);
        for (batch, tokens, d_in, d_out, bias, transposed) in [
            (3, 37, 29, 41, true, false),
            (2, 5, 7, 3, false, false),
            (4, 51, 200, 300, true, true),
            (1, 1, 1, 1, true, false),
        ] {
            let mut layer = LinearConfig::new(d_in, d_out).with_bias(bias).init(&device);
            if transposed {
                let w = Tensor::<2>::random([d_out, d_in], Distribution::Normal(0.0, 0.1), &device);
                layer.weight = Param::from_tensor(w.swap_dims(0, 1));
            }
            if let Some(b) = &layer.bias {
                let moved = b.val().random_like(Distribution::Normal(0.0, 1.0));
                layer.bias = Some(Param::from_tensor(moved));
            }
            let x = Tensor::<3>::random(
                [batch, tokens, d_in],
                Distribution::Normal(0.0, 1.0),
                &device,
            );
            let w = Tensor::<3>::random(
                [batch, tokens, d_out],
                Distribution::Normal(0.0, 1.0),
                &device,
            );
            let run = |ours: bool| {
                let x = x.clone().detach().require_grad();
                let y = if ours {
                    linear(&layer, x.clone())
                } else {
                    layer.forward(x.clone())
                };
                let grads = (y.clone() * w.clone()).sum().backward();
                let dw = layer.weight.grad(&grads).map(values).unwrap();
                let db = layer.bias.as_ref().map(|b| values(b.grad(&grads).unwrap()));
                (
                    y.dims(),
                    values(y),
                    x.grad(&grads).map(values).unwrap(),
                    dw,
                    db,
                )
            };
            let (dims, y, dx, dw, db) = run(true);
            let (dims_ref, y_ref, dx_ref, dw_ref, db_ref) = run(false);
            let name = format!("[{batch}, {tokens}, {d_in}] → {d_out}");
            assert_eq!(dims, dims_ref, "{name}");
            close_named(&format!("{name} y"), &y, &y_ref, 1e-5);
            close_named(&format!("{name} dx"), &dx, &dx_ref, 1e-5);
            close_named(&format!("{name} dW"), &dw, &dw_ref, 1e-5);
            assert_eq!(db.is_some(), bias, "{name}: bias gradient");
            if let (Some(db), Some(db_ref)) = (db, db_ref) {
                close_named(&format!("{name} db"), &db, &db_ref, 1e-5);
            }
            assert!(
                dw.iter().any(|v| v.abs() > 1e-3),
                "{name}: dW is not trivial"
            );
        }
    }

    /// A hand-computed case: `[1, 2; 3, 4] · [1, 0, 2; 0, 1, -1] + [10, 20, 30]`, and outside
    /// a graph; an input with no rows gives no rows.
    #[test]
    fn matches_a_hand_computed_product() {
        let device = Device::flex();
        let mut layer = LinearConfig::new(2, 3).init(&device);
        let w = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, 0.0, 2.0, 0.0, 1.0, -1.0], [2, 3]),
            &device,
        );
        layer.weight = Param::from_tensor(w);
        layer.bias = Some(Param::from_tensor(Tensor::<1>::from_data(
            TensorData::new(vec![10.0f32, 20.0, 30.0], [3]),
            &device,
        )));
        let x = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2]),
            &device,
        );
        assert_eq!(
            values(linear(&layer, x)),
            vec![11.0, 22.0, 30.0, 13.0, 24.0, 32.0]
        );
        let empty = Tensor::<3>::zeros([0, 4, 2], &device);
        assert_eq!(linear(&layer, empty).dims(), [0, 4, 3]);
    }
}
