//! The library's errors as Python exceptions: `med_crossvit.Error` and one subclass per
//! kind, each carrying the library's message (which names the file, row, column or setting
//! at fault).

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

use med_crossvit::Error as LibError;

create_exception!(
    med_crossvit,
    Error,
    PyException,
    "Any error of med-crossvit; the message names what is at fault."
);
create_exception!(
    med_crossvit,
    DataError,
    Error,
    "Bad cohort data or setting: a CSV, tile file, normalization or training setting."
);
create_exception!(
    med_crossvit,
    ConfigError,
    Error,
    "A model configuration that cannot build a model."
);
create_exception!(
    med_crossvit,
    InputError,
    Error,
    "Model inputs of the wrong shape."
);
create_exception!(
    med_crossvit,
    LoadError,
    Error,
    "Model weights that cannot be saved or loaded."
);
create_exception!(
    med_crossvit,
    RunError,
    Error,
    "A run that cannot go on: not a run folder, an existing run, a locked folder, a bad option."
);
create_exception!(
    med_crossvit,
    FileError,
    Error,
    "A file of a run folder that cannot be read or written."
);
create_exception!(
    med_crossvit,
    SlideError,
    Error,
    "A whole-slide image that cannot be found or read."
);

/// Adds the exceptions to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("Error", py.get_type::<Error>())?;
    m.add("DataError", py.get_type::<DataError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("InputError", py.get_type::<InputError>())?;
    m.add("LoadError", py.get_type::<LoadError>())?;
    m.add("RunError", py.get_type::<RunError>())?;
    m.add("FileError", py.get_type::<FileError>())?;
    m.add("SlideError", py.get_type::<SlideError>())?;
    Ok(())
}

/// The Python exception of a library error.
pub fn to_py(e: LibError) -> PyErr {
    let message = e.to_string();
    match e {
        LibError::Config(_) => ConfigError::new_err(message),
        LibError::Input(_) => InputError::new_err(message),
        LibError::Persist(_) => LoadError::new_err(message),
        LibError::Data(_) => DataError::new_err(message),
        LibError::Run(_) => RunError::new_err(message),
        LibError::File(_) => FileError::new_err(message),
        LibError::Slide(_) => SlideError::new_err(message),
    }
}
