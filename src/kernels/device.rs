//! Which backend a device runs on: where the fused operations and host-memory kernels apply.

use burn::tensor::Device;

/// Whether `device` is the flex backend (plain or with autodiff), where the operations of
/// the fused operations run.
pub(crate) fn on_flex(device: &Device) -> bool {
    device.clone().inner() == Device::flex()
}

/// Whether tensors on `device` live in host memory (the flex and ndarray backends).
pub(crate) fn on_host(device: &Device) -> bool {
    if on_flex(device) {
        return true;
    }
    #[cfg(feature = "ndarray")]
    #[allow(deprecated)]
    if device.clone().inner() == Device::ndarray() {
        return true;
    }
    false
}
