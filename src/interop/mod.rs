//! Interoperability with the Python original: importing its PyTorch checkpoints.

mod torch;

pub use torch::{
    Checkpoint, ImportError, OriginalArgs, import_model, import_torch, import_torch_with,
    load_checkpoint,
};
