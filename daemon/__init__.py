"""proctord: the exam-room proctoring appliance daemon."""

__version__ = "0.1.0"
