//! `--device`: the backends compiled into this binary.

use burn::tensor::Device;
use med_crossvit::RunError;

/// Backend names this build knows, compiled in or not.
const ALL: [&str; 3] = ["flex", "ndarray", "wgpu"];

/// The backends compiled into this binary.
pub fn compiled() -> Vec<&'static str> {
    let mut names = Vec::new();
    if cfg!(feature = "flex") {
        names.push("flex");
    }
    if cfg!(feature = "ndarray") {
        names.push("ndarray");
    }
    if cfg!(feature = "wgpu") {
        names.push("wgpu");
    }
    names
}

/// The device named `name`.
pub fn parse(name: &str) -> Result<Device, RunError> {
    let unknown = |what| RunError::Unknown {
        what,
        name: name.to_string(),
        choices: compiled().join(", "),
    };
    match name {
        #[cfg(feature = "flex")]
        "flex" => Ok(Device::flex()),
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)]
        "ndarray" => Ok(Device::ndarray()),
        #[cfg(feature = "wgpu")]
        "wgpu" => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
        _ if ALL.contains(&name) => Err(unknown(
            "device (not compiled into this build; rebuild with --features NAME)",
        )),
        _ => Err(unknown("device")),
    }
}
