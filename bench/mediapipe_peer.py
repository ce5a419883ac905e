"""The benchmark peer: MediaPipe's FaceMesh solution (refine_landmarks) on the frames bench_inference.py saved.

Runs in its own venv (mediapipe pulls in jax and opencv-contrib; never in the project's venv):
    python bench/mediapipe_peer.py FRAMES.npy MAX_FACES
then reads "START END" lines on stdin and answers each with one JSON line: the ms per frame for frames
START..END-1 and how many of them had a face. Chunks let the benchmark take turns with its own pipeline,
so that both see the same load on a shared machine. Tracking carries on from one chunk to the next.
"""

import json
import sys
import time

import cv2
import mediapipe as mp
import numpy as np


def main() -> None:
    frames = np.load(sys.argv[1], mmap_mode="r")
    mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=int(sys.argv[2]), refine_landmarks=True)
    print(json.dumps({"version": mp.__version__}), flush=True)
    for line in sys.stdin:
        start, end = map(int, line.split())
        timings, with_face = [], 0
        for frame in frames[start:end]:
            started = time.perf_counter()
            result = mesh.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            timings.append((time.perf_counter() - started) * 1000)
            with_face += bool(result.multi_face_landmarks)
        print(json.dumps({"ms": timings, "with_face": with_face}), flush=True)


if __name__ == "__main__":
    main()
