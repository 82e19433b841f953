//! Every error type of the crate in one place, for users: each is defined next to the module
//! whose concern it is — the model's in [`model`](crate::model), the cohort data's in
//! [`data`](crate::data), a run's in [`run`](crate::run), a checkpoint import's in
//! [`interop`](crate::interop), a GDC download's in [`cohort::gdc`](crate::cohort::gdc).
//! [`Error`] joins those of training, evaluation and prediction.

pub use crate::cohort::gdc::GdcError;
pub use crate::data::DataError;
pub use crate::interop::ImportError;
pub use crate::model::{ConfigError, InputError, LoadError, PersistError};
pub use crate::run::{Error, NotFinite, Result, RunError, RunFileError};
pub use crate::slide::SlideError;
