//! Helpers of the kernels' tests (and of the model's tests that compare against them).

use burn::tensor::Tensor;

/// The values of an f32 tensor.
pub(crate) fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// Asserts `|a − b| ≤ tol · (1 + |b|)` element by element (and equal lengths), naming `what`
/// and the element in the message.
pub(crate) fn close_named(what: &str, a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * (1.0 + y.abs()),
            "{what}, element {i}: {x} vs {y}"
        );
    }
}

/// [`close_named`] for unnamed values.
pub(crate) fn close(a: &[f32], b: &[f32], tol: f32) {
    close_named("values", a, b, tol);
}
