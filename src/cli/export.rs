//! `med-crossvit export`: a trained model as a safetensors or `torch.save` file for PyTorch.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use med_crossvit::interop::{ExportError, ExportFormat, KeyMap, export_run};

use super::device;

/// The file format, on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    /// A `.safetensors` file, the model's configuration in its metadata.
    Safetensors,
    /// A `torch.save` state dict (zip), for `torch.load(path, weights_only=True)`.
    Torch,
}

/// The key map, on the command line.
#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum KeysArg {
    /// The keys of `med_crossvit.torch.MedCrossViT` (every model).
    #[default]
    Native,
    /// The Python original's keys, for its class's `load_state_dict` (models it can express).
    Original,
}

/// Options of `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The run or model folder (as `predict --model` takes it; a fold of a cross-validation).
    run: PathBuf,
    /// The file to write (not over an existing file without --force).
    #[arg(long)]
    out: PathBuf,
    /// The file format (default: from --out's extension, .safetensors or .pt/.pth).
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Whose key names to write (see docs/export.md).
    #[arg(long, value_enum, default_value = "native")]
    keys: KeysArg,
    /// Replace an existing file.
    #[arg(long)]
    force: bool,
}

pub fn run(args: ExportArgs) -> Result<ExitCode, ExportError> {
    let device = device::parse("flex")?;
    let format = args.format.map(|f| match f {
        FormatArg::Safetensors => ExportFormat::Safetensors,
        FormatArg::Torch => ExportFormat::Torch,
    });
    let keys = match args.keys {
        KeysArg::Native => KeyMap::Native,
        KeysArg::Original => KeyMap::Original,
    };
    let format = export_run(&args.run, format, keys, &args.out, args.force, &device)?;
    println!(
        "wrote {} ({}, {} keys)",
        args.out.display(),
        format.name(),
        keys.name()
    );
    Ok(ExitCode::SUCCESS)
}
