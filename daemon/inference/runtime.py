"""A thin layer over the LiteRT interpreter (ai-edge-litert).

LiteRT only: tflite-runtime, its predecessor, is built for numpy 1.x; under numpy 2 it imports, then
Interpreter() fails, so it cannot be a fallback. LiteRT has wheels for every kiosk (aarch64, x86-64)."""

import functools
import logging
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


@functools.cache
def _interpreter_class() -> type:
    # Imported on first use so that modules that merely mention a model stay importable without a runtime.
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:
        raise ImportError(
            "no TFLite runtime found: install 'ai-edge-litert' (constraints.txt pins it; module "
            f"ai_edge_litert.interpreter): {exc}"
        ) from exc
    log.debug("TFLite interpreter: %s.%s", Interpreter.__module__, Interpreter.__name__)
    return Interpreter


class TFLiteModel:
    """One single-input model, loaded and allocated once, then run many times.

    Outputs come back in the interpreter's output order. Tensor names differ between copies of the same
    model, so callers should pick outputs by shape (see `output_shapes`), never by name.
    """

    def __init__(self, path: Path, threads: int = 1) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"TFLite model not found: {path}")
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.path = path
        try:
            self._interpreter = _interpreter_class()(model_path=str(path), num_threads=threads)
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            # The runtime's messages do not always name the file (e.g. "not a valid Flatbuffer buffer").
            raise ValueError(f"cannot load TFLite model {path}: {exc}") from exc
        inputs = self._interpreter.get_input_details()
        if len(inputs) != 1:
            raise ValueError(
                f"TFLite model {path} has {len(inputs)} inputs; only single-input models are supported"
            )
        self._input: dict[str, Any] = inputs[0]
        outputs = self._interpreter.get_output_details()
        self._output_indices = [d["index"] for d in outputs]
        self._output_shapes = [tuple(int(n) for n in d["shape"]) for d in outputs]
        log.info(
            "loaded %s: input %s %s, outputs %s, %d thread(s)",
            path.name,
            self.input_shape,
            self.input_dtype,
            self._output_shapes,
            threads,
        )

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self._input["shape"])

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(self._input["dtype"])

    @property
    def input_quantization(self) -> tuple[float, int]:
        """(scale, zero_point) of the input; (0.0, 0) for a float input."""
        scale, zero_point = self._input["quantization"]
        return float(scale), int(zero_point)

    @property
    def output_shapes(self) -> list[tuple[int, ...]]:
        return list(self._output_shapes)

    def require(
        self, what: str, input_shape: tuple[int, ...], input_dtype: type, outputs: tuple[tuple[int, ...], ...]
    ) -> tuple[int, ...]:
        """Check this is the model the caller expects: its input, and one output of each shape in `outputs`.
        Returns where each of those outputs comes in `run()`'s list. Raises ValueError naming the file."""
        if self.input_shape != input_shape or self.input_dtype != np.dtype(input_dtype):
            raise ValueError(
                f"{self.path}: input {self.input_shape} {self.input_dtype} does not fit {what} "
                f"(expected {input_shape} {np.dtype(input_dtype)})"
            )
        try:
            return tuple(self._output_shapes.index(shape) for shape in outputs)
        except ValueError:
            raise ValueError(
                f"{self.path}: outputs {self._output_shapes} do not fit {what} (expected {list(outputs)})"
            ) from None

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        """Run one inference. The arrays returned are copies (`get_tensor`), so they stay valid after the
        next `run`; views from `Interpreter.tensor()` would be overwritten by it."""
        self._interpreter.set_tensor(self._input["index"], tensor)
        self._interpreter.invoke()
        return [self._interpreter.get_tensor(i) for i in self._output_indices]


class OnnxModel:
    """An ONNX model run by OpenCV DNN, behind TFLiteModel's interface: NHWC float32 in, outputs in the
    network's output order. OpenCV cannot read the input size from the file, so the caller gives it (a
    square side); the output shapes are learnt from one run at load time. It runs on OpenCV's own thread
    pool (cv2.setNumThreads is process-wide, so it is left to the process)."""

    def __init__(self, path: Path, side: int) -> None:
        import cv2

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {path}")
        self.path = path
        try:
            self._net = cv2.dnn.readNetFromONNX(str(path))
        except cv2.error as exc:
            raise ValueError(f"cannot load ONNX model {path}: {exc}") from exc
        self._names = self._net.getUnconnectedOutLayersNames()
        self.input_shape = (1, side, side, 3)
        self.input_dtype = np.dtype(np.float32)
        try:
            self._output_shapes = [out.shape for out in self.run(np.zeros(self.input_shape, np.float32))]
        except cv2.error as exc:
            raise ValueError(f"ONNX model {path} does not run on a {side}x{side} input: {exc}") from exc

    @property
    def output_shapes(self) -> list[tuple[int, ...]]:
        return list(self._output_shapes)

    require = TFLiteModel.require

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        self._net.setInput(np.ascontiguousarray(tensor.transpose(0, 3, 1, 2)))
        return [np.array(out) for out in self._net.forward(self._names)]
