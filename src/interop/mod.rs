//! Interoperability with PyTorch: importing checkpoints of the Python original, and exporting
//! our models as safetensors or `torch.save` files (`docs/export.md`).

mod export;
mod safetensors;
mod tensor;
mod torch;
mod torch_save;

pub use export::{
    EXPORT_FORMAT_VERSION, ExportError, ExportFormat, KeyMap, export_metadata, export_model,
    export_run, native_tensors, original_tensors,
};
pub use tensor::ExportTensor;
pub use torch::{
    Checkpoint, ImportError, OriginalArgs, import_model, import_torch, import_torch_with,
    load_checkpoint,
};
