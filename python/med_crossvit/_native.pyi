"""Types of the Rust extension `med_crossvit._native` (use the wrappers in `med_crossvit`)."""

from os import PathLike
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import numpy.typing as npt

__version__: str
FILES: Dict[str, str]

class Error(Exception): ...
class DataError(Error): ...
class ConfigError(Error): ...
class InputError(Error): ...
class LoadError(Error): ...
class RunError(Error): ...
class FileError(Error): ...
class SlideError(Error): ...

def settings_defaults() -> str: ...
def train(
    csv: str,
    out: str,
    features: Optional[str] = None,
    settings: str = "{}",
    preset: str = "small",
    config: Optional[str] = None,
    tokenizer: Optional[str] = None,
    signatures: Optional[str] = None,
    folds: Optional[int] = None,
    columns: str = "{}",
    features_key: Optional[str] = None,
    skip_missing: bool = False,
    force: bool = False,
    device: str = "flex",
    stop_after_epoch: Optional[int] = None,
    verbose: bool = True,
) -> str: ...
def resume(
    run: str,
    csv: Optional[str] = None,
    features: Optional[str] = None,
    device: str = "flex",
    stop_after_epoch: Optional[int] = None,
    verbose: bool = True,
) -> str: ...
def evaluate(
    model: str,
    csv: str,
    out: str,
    features: Optional[str] = None,
    features_key: Optional[str] = None,
    skip_missing: bool = False,
    per_slide: bool = False,
    force: bool = False,
    device: str = "flex",
) -> None: ...
def predict(
    model: str,
    csv: str,
    out: str,
    features: Optional[str] = None,
    features_key: Optional[str] = None,
    skip_missing: bool = False,
    per_slide: bool = False,
    attention: Optional[str] = None,
    force: bool = False,
    device: str = "flex",
) -> None: ...
def check(
    csv: str,
    features: Optional[str] = None,
    features_key: Optional[str] = None,
    settings: str = "{}",
    detect_task: bool = True,
    columns: str = "{}",
    skip_missing: bool = False,
) -> str: ...
def synth(
    out: str,
    slides: int = 60,
    tiles: int = 120,
    dim: int = 64,
    genes: int = 32,
    classes: int = 2,
    seed: int = 0,
    survival: bool = False,
    missing: float = 0.0,
) -> Tuple[PathLike[str], PathLike[str]]: ...
def read_tiles(path: str, key: Optional[str] = None) -> npt.NDArray[np.float32]: ...

class Model:
    @staticmethod
    def load(path: str, device: str = "flex") -> "Model": ...
    @property
    def path(self) -> PathLike[str]: ...
    @property
    def genes(self) -> List[str]: ...
    @property
    def n_genes(self) -> int: ...
    @property
    def n_features(self) -> int: ...
    @property
    def task(self) -> str: ...
    @property
    def classes(self) -> List[str]: ...
    @property
    def config_json(self) -> str: ...
    def predict(
        self,
        tiles: npt.NDArray[np.float32],
        expression: npt.NDArray[np.float32],
        mask: Optional[npt.NDArray[np.bool_]] = None,
        normalized: bool = False,
    ) -> Dict[str, npt.NDArray[Any]]: ...
