//! `--device`: the backends compiled into this binary.

use burn::tensor::Device;
use med_crossvit::RunError;

/// Backend names this build knows, compiled in or not.
const ALL: [&str; 4] = ["flex", "ndarray", "wgpu", "cuda"];

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
    if cfg!(feature = "cuda") {
        names.push("cuda");
    }
    names
}

/// The device named `name` (`cuda:I` for the CUDA device `I`).
pub fn parse(name: &str) -> Result<Device, RunError> {
    Ok(parse_many(name, 1)?.0.remove(0))
}

/// `count` devices of the kind `name`: for CUDA the devices `I … I + count − 1` (from `cuda:I`,
/// 0 by default), with whether their gradients are summed by NCCL; for the CPU backends and
/// wgpu `count` handles of the one device (the batch is still shared out and the gradients
/// summed, for the same results, without a speed-up).
pub fn parse_many(name: &str, count: usize) -> Result<(Vec<Device>, bool), RunError> {
    if count == 0 {
        return Err(RunError::Unknown {
            what: "device count (at least 1)",
            name: count.to_string(),
            choices: "1, 2, …".into(),
        });
    }
    if let Some(rest) = name.strip_prefix("cuda") {
        let first = match rest.strip_prefix(':') {
            None if rest.is_empty() => 0,
            Some(i) => i.parse::<usize>().map_err(|_| RunError::Unknown {
                what: "CUDA device index",
                name: name.to_string(),
                choices: "cuda, cuda:0, cuda:1, …".into(),
            })?,
            None => {
                return Err(RunError::Unknown {
                    what: "device",
                    name: name.to_string(),
                    choices: compiled().join(", "),
                });
            }
        };
        return cuda(first, count, name);
    }
    let one = single(name)?;
    Ok((vec![one; count], false))
}

#[cfg(feature = "cuda")]
fn cuda(first: usize, count: usize, _name: &str) -> Result<(Vec<Device>, bool), RunError> {
    Ok((
        (first..first + count).map(Device::cuda).collect(),
        count > 1,
    ))
}

#[cfg(not(feature = "cuda"))]
fn cuda(_first: usize, _count: usize, name: &str) -> Result<(Vec<Device>, bool), RunError> {
    Err(RunError::Unknown {
        what: "device (not compiled into this build; rebuild with --features cuda)",
        name: name.to_string(),
        choices: compiled().join(", "),
    })
}

/// One device of a backend without indices.
fn single(name: &str) -> Result<Device, RunError> {
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
